// End-to-end tests of the SDK against the real binary, once per transport.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";

import { Code, ConnectError, command, core, createClient, signIn, type ClientOptions } from "../src/index.js";
import { adminPassword, startPlatform, type Platform } from "./server.js";

const transports: Record<string, Omit<ClientOptions, "token">> = {
  "connect (node, HTTP/1.1)": {
    transport: ({ baseUrl, interceptors }) =>
      createConnectTransport({ baseUrl, interceptors, httpVersion: "1.1" }),
  },
  "grpc (node, HTTP/2)": {
    transport: ({ baseUrl, interceptors }) =>
      createGrpcTransport({ baseUrl, interceptors }),
  },
  "connect (fetch, default)": {},
  "grpc-web (fetch)": { protocol: "grpc-web" },
};

let platform: Platform;
before(async () => {
  platform = await startPlatform();
});
after(async () => {
  await platform?.stop();
});

let seq = 0;

for (const [name, options] of Object.entries(transports)) {
  describe(name, () => {
    test("wrong password is Unauthenticated", async () => {
      const iot = createClient(platform.baseUrl, options);
      await assert.rejects(iot.signIn("root", "not-the-password"), (err: unknown) => {
        assert.ok(err instanceof ConnectError, `not a ConnectError: ${err}`);
        assert.equal(err.code, Code.Unauthenticated);
        return true;
      });
      assert.equal(iot.token, undefined);
    });

    test("send a command, the device answers it over HTTP, read its history", async () => {
      const iot = await signIn(platform.baseUrl, "root", adminPassword, options);
      seq++;
      const dev = await iot.core.createDevice({ name: `ts-cmd-${seq}` });
      const deviceId = dev.result!.id;
      const sent = await iot.command.sendCommand({ deviceId, name: "reboot", ttl: { seconds: 60n } });
      assert.equal(sent.result?.status, command.CommandStatus.QUEUED);
      const id = sent.result!.id;
      const key = await iot.core.getDeviceKey({ id: deviceId });
      const answer = await fetch(`${platform.httpUrl}/commands/${id}/response`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key.token}` },
        body: JSON.stringify({ status: "succeeded", result: { rebooted: true } }),
      });
      assert.equal(answer.status, 204);
      const got = await iot.command.getCommand({ id });
      assert.equal(got.result?.status, command.CommandStatus.SUCCEEDED);
      assert.deepEqual(got.result?.history.map((e) => e.status), [
        command.CommandStatus.QUEUED,
        command.CommandStatus.DELIVERED,
        command.CommandStatus.SUCCEEDED,
      ]);
    });

    test("sign in, create device and sensor, ingest as the device, read back", async (t) => {
      const iot = await signIn(platform.baseUrl, "root", adminPassword, options);
      assert.ok(iot.token, "no token after sign-in");
      const me = await iot.core.getCurrentUser({});
      assert.equal(me.result?.username, "root");

      seq++;
      const dev = await iot.core.createDevice({ name: `ts-device-${seq}`, labels: { sdk: "ts" } });
      const deviceId = dev.result!.id;
      assert.ok(deviceId > 0n);
      const sen = await iot.core.createSensor({
        deviceId,
        name: "temperature",
        unit: "C",
        valueType: core.ValueType.DOUBLE,
      });
      const sensorId = sen.sensor!.id;
      assert.equal(sen.sensor!.valueType, core.ValueType.DOUBLE);

      const key = await iot.core.getDeviceKey({ id: deviceId });
      assert.ok(key.token);
      const device = iot.withToken(key.token);
      const when = new Date(Date.now() - 1000);
      const value = 21.5 + seq;
      const ing = await device.ingest.ingest({
        readings: [{ sensorId, timestamp: timestampFromDate(when), value: { case: "doubleValue", value } }],
      });
      assert.equal(ing.accepted, 1);

      // A device key may not manage the registry.
      await assert.rejects(device.core.listDevices({}), (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.PermissionDenied);
        return true;
      });

      const list = await iot.query.listReadings({ sensorId });
      assert.equal(list.readings.length, 1);
      const r = list.readings[0];
      assert.equal(r.sensorId, sensorId);
      assert.equal(r.deviceId, deviceId);
      assert.deepEqual(r.value, { case: "doubleValue", value });
      const latest = await iot.query.latest({ sensorId: [sensorId] });
      assert.equal(latest.readings.length, 1);
      assert.deepEqual(latest.readings[0].value, { case: "doubleValue", value });
    });
  });
}
