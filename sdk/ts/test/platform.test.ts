// Tests of the ergonomic client (IotPlatform) against the real binary. It
// imports the package by its name, so scripts/sdk-test.sh runs this same file
// in a fresh project that installed the npm pack tarball.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { Code, ConnectError, IotPlatform, type Reading } from "@iotplatform/sdk";
import { adminPassword, startPlatform, type Platform } from "./server.js";

let platform: Platform;
before(async () => {
  platform = await startPlatform();
});
after(async () => {
  await platform?.stop();
});

// A hang (a reading never delivered) fails after a minute instead of holding CI.
test("IotPlatform: devices, sensors, ingest, subscribe, query, consumers", { timeout: 60_000 }, async () => {
  const iot = new IotPlatform(platform.baseUrl);
  await iot.signIn("root", adminPassword);

  const dev = await iot.devices.create({ name: "ergonomic-car", labels: { kind: "car" } });
  assert.ok(dev.id > 0n);
  assert.ok((await iot.devices.list({ nameFilter: "ergonomic" })).some((d) => d.id === dev.id));
  assert.equal((await iot.devices.get(dev.id)).name, "ergonomic-car");
  const speed = await iot.sensors.create(dev.id, { name: "speed", type: "double", unit: "km/h" });
  const label = await iot.sensors.create(dev.id, { name: "label", type: "string" });
  assert.deepEqual((await iot.sensors.list(dev.id)).map((s) => s.name).sort(), ["label", "speed"]);

  // Subscribe first, from before the readings' timestamps: readings stored
  // before the subscription is live come from the replay, later ones live
  // (the stream does not say when it is live, so a `since` after their
  // timestamps could miss the first ones — that raced and hung in CI).
  const t0 = new Date("2026-01-01T12:00:00Z");
  const abort = new AbortController();
  const live: Reading[] = [];
  const subscribed = (async () => {
    for await (const r of iot.subscribe(speed.id, { since: new Date(t0.getTime() - 60_000), signal: abort.signal })) {
      live.push(r);
      if (live.length === 3) abort.abort();
    }
  })();

  const device = await iot.asDevice(dev.id);
  await device.ingest(speed.id, 10.5, t0);
  assert.equal(
    await device.ingestMany([
      { sensorId: speed.id, value: 20.5, timestamp: new Date(t0.getTime() + 60_000) },
      { sensorId: speed.id, value: 30.5, timestamp: t0.getTime() + 120_000 },
      { sensorId: label.id, value: "parked" },
    ]),
    3,
  );
  await assert.rejects(device.ingest(speed.id, "fast"), (err: unknown) => {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${err}`);
    assert.equal(err.code, Code.InvalidArgument);
    return true;
  });
  await assert.rejects(device.devices.list(), (err: unknown) => err instanceof ConnectError && err.code === Code.PermissionDenied);

  await subscribed;
  assert.deepEqual(live.map((r) => r.value), [10.5, 20.5, 30.5]);
  assert.equal(live[0].sensorId, speed.id);
  assert.equal(live[0].deviceId, dev.id);
  assert.equal(live[0].time.toISOString(), t0.toISOString());

  const rows = await iot.query(speed.id, { from: t0, to: new Date(t0.getTime() + 3_600_000) });
  assert.deepEqual(rows.map((r) => r.value), [10.5, 20.5, 30.5]);
  assert.deepEqual((await iot.query(speed.id, { from: t0, limit: 2, newestFirst: true })).map((r) => r.value), [30.5, 20.5]);
  const buckets = await iot.aggregate(speed.id, { from: t0, to: "2026-01-01T13:00:00Z", interval: "1h", fn: ["avg", "max"] });
  assert.equal(buckets.length, 1);
  assert.equal(buckets[0].count, 3n);
  assert.equal(buckets[0].avg, 20.5);
  assert.equal(buckets[0].max, 30.5);
  assert.deepEqual((await iot.latest([label.id])).map((r) => r.value), ["parked"]);

  const consumer = await iot.consumers.create({ name: "ergonomic-dashboard" });
  assert.deepEqual((await iot.consumers.grant(consumer.id, speed.id)).sensorIds, [speed.id]);
  const reader = await iot.asConsumer(consumer.id);
  assert.equal((await reader.query(speed.id)).length, 3);
  await assert.rejects(reader.query(label.id), (err: unknown) => err instanceof ConnectError && err.code === Code.PermissionDenied);
  await iot.consumers.revoke(consumer.id, speed.id);
  await iot.consumers.delete(consumer.id);
  assert.ok(!(await iot.consumers.list()).some((c) => c.id === consumer.id));

  await iot.devices.delete(dev.id);
  await assert.rejects(iot.devices.get(dev.id), (err: unknown) => err instanceof ConnectError && err.code === Code.NotFound);
});

test("subscribe: onLive says when producing starts, and an old reading sent then is delivered live", { timeout: 60_000 }, async () => {
  const iot = new IotPlatform(platform.baseUrl);
  await iot.signIn("root", adminPassword);
  const dev = await iot.devices.create({ name: "on-live" });
  const s = await iot.sensors.create(dev.id, { name: "t", type: "double" });
  const device = await iot.asDevice(dev.id);
  const abort = new AbortController();
  let lives = 0;
  let readingsBeforeLive = 0;
  const got: Reading[] = [];
  let markLive!: () => void;
  const isLive = new Promise<void>((res) => (markLive = res));
  const done = (async () => {
    // No since: only what is stored after the subscription is live.
    for await (const r of iot.subscribe(s.id, { signal: abort.signal, onLive: () => { lives++; markLive(); } })) {
      if (lives === 0) readingsBeforeLive++;
      got.push(r);
      abort.abort();
    }
  })();
  await isLive;
  await device.ingest(s.id, 7.5, new Date("2020-06-01T00:00:00Z")); // an old timestamp: only the live feed can deliver it
  await done;
  assert.equal(lives, 1);
  assert.equal(readingsBeforeLive, 0);
  assert.deepEqual(got.map((r) => r.value), [7.5]);
});
