// Session renewal against a platform whose user tokens live 2 s: the client
// renews expired tokens before a call, concurrent calls share one renewal,
// signOut revokes the refresh token.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import type { Interceptor } from "@connectrpc/connect";

import { Code, ConnectError, IotPlatform, createClient } from "../src/index.js";
import { adminPassword, startPlatform, type Platform } from "./server.js";

const expired = 2500; // ms: past the 2 s user-token lifetime
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isUnauthenticated(err: unknown): true {
  assert.ok(err instanceof ConnectError, `not a ConnectError: ${err}`);
  assert.equal(err.code, Code.Unauthenticated);
  return true;
}

/** An interceptor counting RefreshToken calls. */
function refreshCounter(): { interceptor: Interceptor; count: () => number } {
  let n = 0;
  return {
    interceptor: (next) => async (req) => {
      if (req.method.name === "RefreshToken") n++;
      return next(req);
    },
    count: () => n,
  };
}

let platform: Platform;
before(async () => {
  platform = await startPlatform(["--user-token-ttl", "2s"]);
});
after(async () => {
  await platform?.stop();
});

describe("session", () => {
  test("an expired user token is renewed before the call; the old one is refused", async () => {
    const refreshes = refreshCounter();
    const iot = createClient(platform.baseUrl, { interceptors: [refreshes.interceptor] });
    await iot.signIn("root", adminPassword);
    const first = iot.token;
    assert.ok(iot.session?.refreshToken, "no refresh token kept");
    assert.ok(iot.session?.expires instanceof Date);
    await sleep(expired);
    const me = await iot.core.getCurrentUser({});
    assert.equal(me.result?.username, "root");
    assert.notEqual(iot.token, first, "the token was not renewed");
    assert.equal(refreshes.count(), 1);
    const stale = createClient(platform.baseUrl, { token: first });
    await assert.rejects(stale.core.getCurrentUser({}), isUnauthenticated);

    // Concurrent calls after the expiry share one renewal.
    await sleep(expired);
    const all = await Promise.all([
      iot.core.getCurrentUser({}),
      iot.core.listDevices({}),
      iot.core.getCurrentUser({}),
    ]);
    assert.equal(all[0].result?.username, "root");
    assert.equal(refreshes.count(), 2);

    // A saved session (through JSON) resumes in another client.
    const saved = JSON.parse(JSON.stringify(iot.session));
    const resumed = createClient(platform.baseUrl, { session: saved });
    await resumed.refresh(); // spends iot's refresh token
    assert.equal((await resumed.core.getCurrentUser({})).result?.username, "root");

    // iot's refresh token is spent: the renewal fails, the session is
    // forgotten and the call is Unauthenticated.
    await sleep(expired);
    await assert.rejects(iot.core.getCurrentUser({}), isUnauthenticated);
    assert.equal(iot.session?.refreshToken, "");
    await assert.rejects(iot.refresh(), isUnauthenticated);
    await resumed.signOut();
  });

  test("signOut revokes the refresh token and forgets the session", async () => {
    const iot = createClient(platform.baseUrl);
    await iot.signIn("root", adminPassword);
    await iot.refresh();
    const saved = iot.session!;
    await iot.signOut();
    assert.equal(iot.token, undefined);
    assert.equal(iot.session, undefined);
    await assert.rejects(iot.refresh(), isUnauthenticated);
    const again = createClient(platform.baseUrl, { session: saved });
    await assert.rejects(again.refresh(), isUnauthenticated); // refused by the server
  });

  test("IotPlatform renews, shares one renewal, signs out", async () => {
    const refreshes = refreshCounter();
    const iot = new IotPlatform(platform.baseUrl, { interceptors: [refreshes.interceptor] });
    await iot.signIn("root", adminPassword);
    const first = iot.token;
    await sleep(expired);
    await Promise.all([iot.devices.list(), iot.consumers.list()]);
    assert.notEqual(iot.token, first);
    assert.equal(refreshes.count(), 1);
    await assert.rejects(iot.withToken(first!).devices.list(), isUnauthenticated);
    const saved = iot.session!;
    await iot.signOut();
    assert.equal(iot.session, undefined);
    await assert.rejects(iot.refresh(), isUnauthenticated);
    await assert.rejects(new IotPlatform(platform.baseUrl, { session: saved }).refresh(), isUnauthenticated);
  });
});
