// The web console in real headless Chromium: the original platform's GUI
// flow, the device page's snippets pasted into a shell, live and history
// charts fed through the HTTP gateway and MQTT, consumers with grants and
// keys, key rotation, a non-admin user, operator pages, and bad input in
// every form. Started by e2e/console_test.go (go test ./e2e -run Console).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { adminToken, chain, env, launch, newPage, rest, shot, signIn, uniq } from "./harness.mjs";

let browser;
const problems = [];
let admin; // REST token of root, to check what the console did
const s = {}; // state shared by the steps, in order
const step = chain(test, () => s.page);

before(async () => {
  browser = await launch();
  admin = await adminToken();
});
after(async () => {
  await browser?.close();
  assert.deepEqual(problems, [], "no CSP violations or page errors");
});

const countDevices = async (token = admin) => (await rest("GET", "/api/devices?page_size=1000", token))[1].result.length;

step("/ and /devices serve the console with a CSP and no inline script", async () => {
  for (const p of ["/", "/devices", "/devices/1", "/consumers"]) {
    const r = await fetch(env.api + p);
    assert.equal(r.status, 200, p);
    assert.match(r.headers.get("content-type"), /text\/html/);
    assert.match(r.headers.get("content-security-policy"), /script-src 'self'/);
    const html = await r.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, "no inline script");
  }
  const api = await fetch(env.api + "/api/devices");
  assert.equal(api.status, 401, "REST still answers, unauthenticated");
  assert.equal((await fetch(env.api + "/no-such-page")).status, 404);
});

step("sign-in: empty and wrong password give a message, right password shows the devices", async () => {
  const page = (s.page = await newPage(browser, problems));
  await page.goto("/devices");
  await page.getByRole("heading", { name: "Sign in to iotplatform" }).waitFor();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "Enter your username and password." }).waitFor();
  await page.getByLabel("Username", { exact: true }).fill("root");
  await page.getByLabel("Password", { exact: true }).fill("wrong-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  const alert = page.getByRole("alert");
  await alert.filter({ hasText: /password/i }).waitFor();
  assert.doesNotMatch(await alert.innerText(), /[{}]/, "no raw JSON");
  await shot(page, "signin-error");
  await page.getByLabel("Password", { exact: true }).fill(env.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Devices" }).waitFor();
  assert.equal(new URL(page.url()).pathname, "/devices");
  const stored = await page.evaluate(() => ({ local: JSON.stringify(localStorage), session: sessionStorage.length }));
  assert.equal(stored.local, "{}", "nothing in localStorage");
  assert.equal(stored.session, 1, "the session is in sessionStorage");
});

step("add device: an empty name is refused with nothing created, then the device is added and listed", async () => {
  const page = s.page;
  const before = await countDevices();
  await page.getByRole("button", { name: "Add device" }).click();
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: "Give the device a name." }).waitFor();
  assert.equal(await countDevices(), before, "nothing created");
  s.deviceName = uniq("car");
  await page.getByLabel("Name", { exact: true }).fill(s.deviceName);
  await page.getByLabel("Description", { exact: true }).fill("a test car");
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("status").filter({ hasText: `Device “${s.deviceName}” created` }).waitFor();
  await page.getByRole("link", { name: s.deviceName }).waitFor();
  assert.equal(await countDevices(), before + 1);
  // A duplicate name: the API's message, in words, nothing created.
  await page.getByRole("button", { name: "Add device" }).click();
  await page.getByLabel("Name", { exact: true }).fill(s.deviceName);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  const err = page.locator("form .error");
  await err.filter({ hasText: /exists/i }).waitFor();
  assert.doesNotMatch(await err.innerText(), /[{}]/);
  assert.equal(await countDevices(), before + 1, "no duplicate created");
  await page.getByRole("button", { name: "Cancel" }).click();
  await shot(page, "devices");
});

step("device page: add sensors (name, description, type, unit, path), bad input refused, sensor id shown", async () => {
  const page = s.page;
  await page.getByRole("row", { name: new RegExp(s.deviceName) }).getByRole("link", { name: "View" }).click();
  await page.getByRole("heading", { name: s.deviceName }).waitFor();
  s.deviceId = await page.getByTestId("device-id").innerText();
  const addSensor = async (name, desc, type, unit, path) => {
    await page.getByRole("button", { name: "Add sensor" }).click();
    await page.getByLabel("Name", { exact: true }).fill(name);
    await page.getByLabel("Description", { exact: true }).fill(desc);
    await page.getByLabel("Type", { exact: true }).selectOption({ label: type });
    await page.getByLabel("Unit", { exact: true }).fill(unit);
    await page.getByLabel("Path", { exact: true }).fill(path);
    await page.getByRole("button", { name: "Add", exact: true }).click();
  };
  // Empty name.
  await page.getByRole("button", { name: "Add sensor" }).click();
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: "Give the sensor a name." }).waitFor();
  await page.getByRole("button", { name: "Cancel" }).click();
  await addSensor("speed", "vehicle speed", "double (number)", "km/h", "engine");
  await page.getByRole("status").filter({ hasText: "Sensor “speed” added" }).waitFor();
  await addSensor("door", "door open", "boolean", "", "body");
  await page.getByRole("status").filter({ hasText: "Sensor “door” added" }).waitFor();
  await addSensor("rpm", "engine speed", "long (integer)", "1/min", "engine");
  await page.getByRole("status").filter({ hasText: "Sensor “rpm” added" }).waitFor();
  const [, sensors] = await rest("GET", `/api/devices/${s.deviceId}/sensors`, admin);
  const list = sensors.result ?? sensors;
  assert.equal(list.length, 3);
  const bySensor = Object.fromEntries(list.map((x) => [x.name, x]));
  assert.equal(bySensor.speed.description, "vehicle speed");
  assert.equal(bySensor.speed.unit, "km/h");
  assert.equal(bySensor.speed.path, "engine");
  assert.equal(bySensor.rpm.value_type, "VALUE_TYPE_LONG");
  assert.equal(bySensor.door.value_type, "VALUE_TYPE_BOOLEAN");
  // Duplicate sensor: refused in words, nothing created.
  await addSensor("speed", "again", "double (number)", "km/h", "engine");
  await page.locator("form .error").filter({ hasText: /exists/i }).waitFor();
  const [, again] = await rest("GET", `/api/devices/${s.deviceId}/sensors`, admin);
  assert.equal((again.result ?? again).length, 3, "no duplicate sensor");
  await page.getByRole("button", { name: "Cancel" }).click();
  // The tree shows paths and the sensor ids.
  const speed = page.locator(`li.sensor[data-name="speed"]`);
  s.speedId = await speed.getByTestId("sensor-id").innerText();
  s.doorId = await page.locator(`li.sensor[data-name="door"]`).getByTestId("sensor-id").innerText();
  s.rpmId = await page.locator(`li.sensor[data-name="rpm"]`).getByTestId("sensor-id").innerText();
  assert.equal(s.speedId, String(list.find((x) => x.name === "speed").id));
  await page.locator(".tree .seg", { hasText: "engine/" }).waitFor();
  assert.match(await speed.locator(".sid").getAttribute("title"), /sensor_id/);
});

step("download device key: the file holds a working device token", async () => {
  const page = s.page;
  await page.getByTestId("last-seen").filter({ hasText: /^never$/ }).waitFor(); // the device never connected
  const [dl] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download device key" }).click()]);
  assert.equal(dl.suggestedFilename(), `device-${s.deviceId}-key.json`);
  const key = JSON.parse(readFileSync(await dl.path(), "utf8"));
  assert.ok(key.token.split(".").length === 3, "a JWT");
  s.deviceToken = key.token;
  s.keyFile = await dl.path();
  const r = await fetch(env.http, { method: "POST", headers: { authorization: `Bearer ${key.token}`, "Content-Type": "application/json" }, body: JSON.stringify({ sensor_id: s.speedId, value: 1.5, timestamp: Date.now() - 60_000 }) });
  assert.equal(r.status, 200, await r.text());
});

step("connect this device: the curl and mosquitto_pub snippets work when pasted, and the live chart moves", async () => {
  const page = s.page;
  await page.getByRole("button", { name: "Put the key into the snippets" }).click();
  await page.getByRole("button", { name: "Hide the key in snippets" }).waitFor();
  await page.getByLabel("Sensor", { exact: true }).selectOption(s.speedId);
  // The live chart is on by default for the first numeric sensor.
  await page.locator(".chart-info").filter({ hasText: /Live/ }).waitFor();
  const run = (text) => execFileSync("bash", ["-c", "set -euo pipefail\n" + text], { encoding: "utf8", timeout: 20_000 });
  await page.getByRole("tab", { name: "curl (HTTP)" }).click();
  let curl = await page.locator('pre[data-snippet="curl"]').innerText();
  assert.match(curl, new RegExp(env.http.replace(/[/.]/g, "\\$&")));
  curl = curl.replace('"value":21.5', '"value":41.5');
  const out = run(curl);
  assert.match(out, /"accepted":1/);
  await page.getByRole("tab", { name: "mosquitto_pub (MQTT)" }).click();
  let mq = await page.locator('pre[data-snippet="mosquitto"]').innerText();
  assert.match(mq, new RegExp(`-t ${s.deviceId} `));
  mq = mq.replace('"value":21.5', '"value":42.5');
  run(mq);
  // Both readings reach the latest-value cell and the live chart.
  await page.locator(`[data-latest="${s.speedId}"]`).filter({ hasText: /4[12]\.5 km\/h/ }).waitFor({ timeout: 15_000 });
  await page.locator(".chart-info").filter({ hasText: /Live: ([3-9]|\d{2,}) readings received/ }).waitFor();
  assert.ok(await page.evaluate(() => performance.getEntriesByName("iot-chart-live-frame").length > 0), "the live chart redrew");
  // Connection and last seen come from the device state API (GetDeviceState), not the newest
  // reading: the page shows the state's last_seen and, with mosquitto_pub gone, "offline".
  await page.getByTestId("last-seen").filter({ hasText: /ago/ }).waitFor({ timeout: 10_000 });
  let st, shown;
  for (let i = 0; i < 60; i++) {
    st = (await rest("GET", `/api/devices/${s.deviceId}/state`, admin))[1].result;
    shown = await page.getByTestId("last-seen").locator("time").getAttribute("datetime");
    if (st.last_seen && Math.abs(Date.parse(shown) - Date.parse(st.last_seen)) < 1000 && !st.online) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(Math.abs(Date.parse(shown) - Date.parse(st.last_seen)) < 1000, `last seen ${shown} is the state's ${st.last_seen}`);
  assert.ok(Date.now() - Date.parse(shown) < 60_000, "last seen is the connection time, not the 1 min old reading");
  await page.getByTestId("online").filter({ hasText: /^offline$/ }).waitFor();
  await shot(page, "device");
});

step("the WebSocket, grpcurl, iotctl and the Python, Go and TypeScript SDK snippets work when pasted", async () => {
  const page = s.page;
  const run = (text) => execFileSync("bash", ["-c", "set -euo pipefail\n" + text], { encoding: "utf8", timeout: 20_000 });
  // WebSocket: the JavaScript snippet in a blank browser page.
  await page.getByRole("tab", { name: "WebSocket (JavaScript)" }).click();
  const js = await page.locator('pre[data-snippet="websocket"]').innerText();
  const blank = await browser.newPage();
  const ack = await blank.evaluate(
    (code) =>
      new Promise((resolve, reject) => {
        const console = { log: resolve }; // the snippet logs the acknowledgement
        setTimeout(() => reject(new Error("no acknowledgement in 10 s")), 10_000);
        // eslint-disable-next-line no-eval
        eval(code.replace('"value":21.5', '"value":43.5'));
        void console;
      }),
    js,
  );
  await blank.close();
  assert.match(String(ack), /"status":200/);
  await page.getByRole("tab", { name: "grpcurl (gRPC stream)" }).click();
  const g = (await page.locator('pre[data-snippet="grpcurl"]').innerText()).replace(/^grpcurl /m, `${process.env.IOT_CONSOLE_GRPCURL} `).replace('"double_value":21.5', '"double_value":44.5');
  assert.match(run(g), /"accepted": 1/);
  await page.getByRole("tab", { name: "iotctl" }).click();
  const ctl = (await page.locator('pre[data-snippet="iotctl"]').innerText()).replace("bin/iotctl", process.env.IOT_CONSOLE_IOTCTL).replace("'21.5'", "'45.5'");
  run(ctl);
  await page.locator(`[data-latest="${s.speedId}"]`).filter({ hasText: /45\.5 km\/h/ }).waitFor({ timeout: 15_000 });
  // The SDK snippets name the real address and ids.
  await page.getByRole("tab", { name: "Python SDK" }).click();
  const py = await page.locator('pre[data-snippet="python"]').innerText();
  assert.match(py, new RegExp(`sensor_id=${s.speedId}, double_value=21.5`));
  // ... and the Python one runs as pasted (the SDK from sdk/python in the project's venv).
  execFileSync(process.env.IOT_CONSOLE_PYTHON, ["-c", py.replace("double_value=21.5", "double_value=46.5")], {
    encoding: "utf8",
    timeout: 20_000,
    env: { ...process.env, PYTHONPATH: process.env.IOT_CONSOLE_PYTHONPATH },
  });
  await page.locator(`[data-latest="${s.speedId}"]`).filter({ hasText: /46\.5 km\/h/ }).waitFor({ timeout: 15_000 });
  // ... and the Go one is a whole program that runs as pasted, in a fresh module
  // requiring the SDK the way docs/SDK.md says (replace directives to this tree).
  await page.getByRole("tab", { name: "Go SDK" }).click();
  const goSrc = await page.locator('pre[data-snippet="go"]').innerText();
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
  const dir = mkdtempSync(join(tmpdir(), "console-go-snippet-"));
  writeFileSync(join(dir, "main.go"), goSrc.replace("DoubleValue: 21.5", "DoubleValue: 47.5"));
  const goenv = { ...process.env, TOKEN: s.deviceToken, GOFLAGS: "-mod=mod" };
  const sh = (args) => execFileSync("go", args, { cwd: dir, encoding: "utf8", timeout: 120_000, env: goenv });
  sh(["mod", "init", "snippet"]);
  sh(["mod", "edit", "-require=github.com/iotplatform/iotplatform/sdk/go@v0.0.0", `-replace=github.com/iotplatform/iotplatform/sdk/go=${root}/sdk/go`, `-replace=github.com/iotplatform/iotplatform/gen=${root}/gen`]);
  sh(["mod", "tidy"]);
  sh(["run", "."]);
  await page.locator(`[data-latest="${s.speedId}"]`).filter({ hasText: /47\.5 km\/h/ }).waitFor({ timeout: 15_000 });
  // ... and the TypeScript one runs as pasted under Node: bundled by esbuild with
  // the SDK from its source (web/alias.mjs, as the console itself is built).
  await page.getByRole("tab", { name: "TypeScript SDK" }).click();
  const tsSrc = await page.locator('pre[data-snippet="ts"]').innerText();
  const tsDir = mkdtempSync(join(tmpdir(), "console-ts-snippet-"));
  writeFileSync(join(tsDir, "snippet.ts"), tsSrc.replace('value: 21.5', 'value: 48.5'));
  const esbuild = await import("esbuild");
  const { alias } = await import("../alias.mjs");
  await esbuild.build({ absWorkingDir: resolve(root, "web"), entryPoints: [join(tsDir, "snippet.ts")], bundle: true, platform: "node", format: "esm", target: "node20", outfile: join(tsDir, "snippet.mjs"), alias, logLevel: "error" });
  execFileSync(process.execPath, [join(tsDir, "snippet.mjs")], { encoding: "utf8", timeout: 20_000, env: { ...process.env, TOKEN: s.deviceToken } });
  await page.locator(`[data-latest="${s.speedId}"]`).filter({ hasText: /48\.5 km\/h/ }).waitFor({ timeout: 15_000 });
});

step("history chart: Aggregate min/avg/max buckets, raw readings when zoomed in, several sensors, a boolean as a state timeline", async () => {
  const page = s.page;
  // 6,000 speed and rpm readings over the last 10 minutes (one HTTP batch each), door states.
  const now = Date.now();
  const batch = (sensor, f) => Array.from({ length: 6000 }, (_, i) => ({ sensor_id: sensor, timestamp: now - 600_000 + i * 100, value: f(i) }));
  for (const body of [batch(s.speedId, (i) => 50 + 20 * Math.sin(i / 300) + (i % 7)), batch(s.rpmId, (i) => 1000 + (i % 500)), [0, 1, 2, 3].map((i) => ({ sensor_id: s.doorId, timestamp: now - 500_000 + i * 100_000, value: i % 2 === 0 }))]) {
    const r = await fetch(env.http, { method: "POST", headers: { authorization: `Bearer ${s.deviceToken}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
    assert.equal(r.status, 200, await r.text());
  }
  assert.ok(await page.getByRole("checkbox", { name: /engine\/rpm/ }).isChecked(), "numeric sensors are on the chart from the start");
  await page.getByRole("checkbox", { name: /body\/door/ }).check();
  await page.getByLabel("Time range", { exact: true }).selectOption("15m");
  const info = page.locator(".chart-info");
  await info.filter({ hasText: /(speed|rpm) \d+ buckets of \d+s; (speed|rpm) \d+ buckets/ }).waitFor();
  const legend = await page.locator(".u-legend").innerText();
  for (const want of ["speed (km/h) avg", "speed max", "speed min", "rpm (1/min) avg"]) assert.ok(legend.includes(want), `legend has ${want}: ${legend}`);
  // The boolean sensor: a timeline and a table of its states.
  const door = page.locator(`[data-state="${s.doorId}"]`);
  await door.locator(".timeline .seg").first().waitFor();
  assert.equal(await door.locator("tbody tr").count(), 4);
  await shot(page, "history");
  // Zoom into ~20 s by dragging across the plot: raw readings.
  const box = await page.locator(".u-over").boundingBox();
  const x = box.x + box.width * 0.9;
  await page.mouse.move(x, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(x + box.width * 0.02, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await info.filter({ hasText: /speed \d+ raw readings/ }).waitFor();
  assert.ok(await page.evaluate(() => performance.getEntriesByName("iot-chart-draw").length >= 2));
  // Custom range with the end before the start: a message, no request.
  await page.getByLabel("Time range", { exact: true }).selectOption("custom");
  await page.getByLabel("From", { exact: true }).fill("2026-01-02T00:00:00");
  await page.getByLabel("To", { exact: true }).fill("2026-01-01T00:00:00");
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByRole("alert").filter({ hasText: "The start must be before the end." }).waitFor();
  await page.getByLabel("Time range", { exact: true }).selectOption("live");
});

step("dead letters: an MQTT 3.1.1 publish to an unknown sensor is listed with its reason, filtered by device", async () => {
  const page = s.page;
  execFileSync("mosquitto_pub", ["-h", env.mqttHost, "-p", env.mqttPort, "-V", "mqttv311", "-q", "1", "-u", "JWT", "-P", s.deviceToken, "-t", s.deviceId, "-m", '{"sensor_id":"999999","value":1}'], { timeout: 10_000 });
  await page.getByRole("link", { name: "Dead letters" }).click();
  await page.getByRole("heading", { name: "Dead letters" }).waitFor();
  await page.getByLabel("Device", { exact: true }).selectOption(s.deviceId);
  const row = page.locator("tr[data-deadletter]").first();
  await row.waitFor();
  assert.match(await row.innerText(), /unknown_sensor|unknown sensor/i);
  assert.match(await row.locator(".payload").innerText(), /999999/);
  assert.match(page.url(), new RegExp(`device=${s.deviceId}`));
  await shot(page, "deadletters");
});

step("device key rotation warns what stops working, and the old key fails afterwards", async () => {
  const page = s.page;
  await page.goto(`/devices/${s.deviceId}`);
  await page.getByRole("button", { name: "Rotate key…" }).click();
  const dlg = page.getByRole("dialog", { name: "Rotate the device key?" });
  assert.match(await dlg.innerText(), /current key stops working/);
  await dlg.getByRole("button", { name: "Cancel" }).click();
  const push = (token) => fetch(env.http, { method: "POST", headers: { authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify({ sensor_id: s.speedId, value: 1 }) });
  assert.equal((await push(s.deviceToken)).status, 200, "cancel keeps the key");
  await page.getByRole("button", { name: "Rotate key…" }).click();
  const [dl] = await Promise.all([page.waitForEvent("download"), page.getByRole("dialog").getByRole("button", { name: "Rotate key" }).click()]);
  const fresh = JSON.parse(readFileSync(await dl.path(), "utf8")).token;
  assert.notEqual(fresh, s.deviceToken);
  await page.getByRole("status").filter({ hasText: "the old key no longer works" }).waitFor();
  let status = 0;
  for (let i = 0; i < 50 && status !== 403; i++) {
    status = (await push(s.deviceToken)).status;
    if (status !== 403) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, 403, "the old key is refused");
  assert.equal((await push(fresh)).status, 200, "the new key works");
  s.deviceToken = fresh;
});

step("consumers: bad input refused, add, grant and revoke, the downloaded key reads only its granted sensor, rotation stops the old key", async () => {
  const page = s.page;
  const countConsumers = async () => (await rest("GET", "/api/consumers?page_size=1000", admin))[1].result.length;
  await page.getByRole("link", { name: "Consumers" }).click();
  await page.getByRole("heading", { name: "Consumers" }).waitFor();
  const before = await countConsumers();
  await page.getByRole("button", { name: "Add consumer" }).click();
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: "Give the consumer a name." }).waitFor();
  assert.equal(await countConsumers(), before);
  const name = uniq("analytics");
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("row", { name: new RegExp(name) }).getByRole("link", { name: "View" }).click();
  await page.getByRole("heading", { name }).waitFor();
  const cid = page.url().split("/").pop();
  const grants = async () => (await rest("GET", `/api/consumers/${cid}`, admin))[1].result.sensor_ids ?? [];
  // Bad sensor ids: refused in words, nothing granted.
  for (const [bad, msg] of [["abc", /positive whole number/], ["999999", /not found|does not exist|unknown/i]]) {
    await page.getByLabel("Sensor id", { exact: true }).fill(bad);
    await page.getByRole("button", { name: "Grant" }).click();
    await page.locator("form .error").filter({ hasText: msg }).waitFor();
    assert.doesNotMatch(await page.locator("form .error").innerText(), /[{}]/);
  }
  assert.deepEqual(await grants(), []);
  for (const sid of [s.speedId, s.doorId]) {
    await page.getByLabel("Sensor id", { exact: true }).fill(sid);
    await page.getByRole("button", { name: "Grant" }).click();
    await page.locator(`[data-grant="${sid}"]`).waitFor();
  }
  await page.getByRole("button", { name: `Revoke sensor ${s.doorId}` }).click();
  await page.getByRole("status").filter({ hasText: `Sensor ${s.doorId} revoked` }).waitFor();
  assert.deepEqual((await grants()).map(String), [s.speedId]);
  await shot(page, "consumer");
  const [dl] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download consumer key" }).click()]);
  assert.equal(dl.suggestedFilename(), `consumer-${cid}-key.json`);
  const key = JSON.parse(readFileSync(await dl.path(), "utf8")).token;
  const read = async (token, sid) => (await rest("GET", `/api/sensors/${sid}/readings?limit=1`, token))[0];
  assert.equal(await read(key, s.speedId), 200, "the granted sensor");
  for (const sid of [s.doorId, s.rpmId]) assert.notEqual(await read(key, sid), 200, `sensor ${sid} is not granted`);
  assert.notEqual((await rest("GET", "/api/devices", key))[0], 200, "a consumer key manages nothing");
  // Rotation.
  await page.getByRole("button", { name: "Rotate key…" }).click();
  assert.match(await page.getByRole("dialog").innerText(), /current key stops working/);
  const [dl2] = await Promise.all([page.waitForEvent("download"), page.getByRole("dialog").getByRole("button", { name: "Rotate key" }).click()]);
  const fresh = JSON.parse(readFileSync(await dl2.path(), "utf8")).token;
  let status = 200;
  for (let i = 0; i < 50 && status === 200; i++) {
    status = await read(key, s.speedId);
    if (status === 200) await new Promise((r) => setTimeout(r, 100));
  }
  assert.notEqual(status, 200, "the old consumer key is refused");
  assert.equal(await read(fresh, s.speedId), 200);
});

step("users: bad input refused; a non-admin user sees no admin pages and no other user's devices", async () => {
  const page = s.page;
  const countUsers = async () => (await rest("GET", "/api/users?page_size=1000", admin))[1].result.length;
  await page.getByRole("link", { name: "Users" }).click();
  await page.getByRole("heading", { name: "Users" }).waitFor();
  const before = await countUsers();
  await page.getByRole("button", { name: "Add user" }).click();
  const add = async (u, pw) => {
    await page.getByLabel("Username", { exact: true }).fill(u);
    await page.getByLabel("Password", { exact: true }).fill(pw);
    await page.getByRole("button", { name: "Add", exact: true }).click();
  };
  await add("Bad Name!", "longenough");
  await page.getByRole("alert").filter({ hasText: /username must be 3 to 30/ }).waitFor();
  await add("alice_" + Math.random().toString(36).slice(2, 6), "short");
  await page.getByRole("alert").filter({ hasText: /password must be 8 to 256/ }).waitFor();
  await add("root", "longenough1");
  await page.locator("form .error").filter({ hasText: /exists/i }).waitFor();
  assert.equal(await countUsers(), before, "nothing created");
  s.user = "bob_" + Math.random().toString(36).slice(2, 6);
  s.userPw = "pw-" + Math.random().toString(36).slice(2, 12);
  await add(s.user, s.userPw);
  await page.getByRole("status").filter({ hasText: `User ${s.user} created.` }).waitFor();
  assert.equal(await countUsers(), before + 1);
  // Reset the new user's password: too short is refused, then a good one works.
  await page.getByRole("row", { name: new RegExp(s.user) }).getByRole("button", { name: "Reset password" }).click();
  await page.getByLabel("New password", { exact: true }).fill("short");
  await page.getByRole("button", { name: "Set password", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: /password must be 8 to 256/ }).waitFor();
  s.userPw = "pw2-" + Math.random().toString(36).slice(2, 12);
  await page.getByLabel("New password", { exact: true }).fill(s.userPw);
  await page.getByRole("button", { name: "Set password", exact: true }).click();
  await page.getByRole("status").filter({ hasText: `Password of ${s.user} reset.` }).waitFor();
  await shot(page, "users");
  // The user in a browser of their own.
  const up = (s.userPage = await newPage(browser, problems));
  await signIn(up, s.user, s.userPw);
  await up.getByText("No devices yet").waitFor();
  assert.equal(await up.getByRole("link", { name: s.deviceName }).count(), 0, "root's device is not listed");
  assert.equal(await up.getByRole("navigation").getByRole("link", { name: "Users" }).count(), 0, "no Users link");
  await up.goto("/users");
  await up.getByRole("heading", { name: "Administrators only" }).waitFor();
  await up.goto(`/devices/${s.deviceId}`);
  const err = up.getByRole("alert");
  await err.waitFor();
  assert.match(await err.innerText(), /not allowed|not found/i);
  assert.doesNotMatch(await err.innerText(), /[{}]/);
  assert.equal(await up.getByRole("button", { name: "Download device key" }).count(), 0);
});

step("session: an expired or revoked token sends the user back to sign-in with a message, and back to the page", async () => {
  const up = s.userPage;
  await up.goto("/consumers");
  await up.getByRole("heading", { name: "Consumers" }).waitFor();
  // A token the server no longer accepts (as after expiry): the next API call fails.
  await up.evaluate(() => {
    const k = "iotplatform.session";
    const sess = JSON.parse(sessionStorage.getItem(k));
    sess.token = sess.token.slice(0, -4) + "AAAA";
    sessionStorage.setItem(k, JSON.stringify(sess));
  });
  await up.goto("/consumers");
  await up.getByRole("heading", { name: "Sign in to iotplatform" }).waitFor();
  await up.getByRole("alert").filter({ hasText: "Your session has expired" }).waitFor();
  await up.getByLabel("Username", { exact: true }).fill(s.user);
  await up.getByLabel("Password", { exact: true }).fill(s.userPw);
  await up.getByRole("button", { name: "Sign in" }).click();
  await up.getByRole("heading", { name: "Consumers" }).waitFor();
  // Past its expiry time: sign-in with the message, without an API call.
  await up.evaluate(() => {
    const k = "iotplatform.session";
    const sess = JSON.parse(sessionStorage.getItem(k));
    sess.expires = Date.now() - 1000;
    sessionStorage.setItem(k, JSON.stringify(sess));
  });
  await up.goto("/devices");
  await up.getByRole("alert").filter({ hasText: "Your session has expired" }).waitFor();
  await shot(up, "session-expired");
  await up.context().close();
});

step("users: an admin disables a user, whose sign-in then says so; enabling lets them in again", async () => {
  const page = s.page;
  await page.goto("/users");
  const row = page.getByRole("row", { name: new RegExp(s.user) });
  await row.getByRole("button", { name: "Disable" }).click();
  await page.getByRole("status").filter({ hasText: `${s.user} is disabled` }).waitFor();
  await row.getByRole("cell", { name: "disabled", exact: true }).waitFor();
  assert.equal(await page.getByRole("row", { name: /^root/ }).getByRole("button", { name: "Disable" }).count(), 0, "no Disable for oneself");
  const users = (await rest("GET", "/api/users?page_size=1000", admin))[1].result;
  assert.equal(users.find((u) => u.username === s.user).disabled, true, "disabled through the API");
  const up = await newPage(browser, problems);
  await up.goto("/signin");
  await up.getByLabel("Username", { exact: true }).fill(s.user);
  await up.getByLabel("Password", { exact: true }).fill(s.userPw);
  await up.getByRole("button", { name: "Sign in" }).click();
  const alert = up.getByRole("alert").filter({ hasText: /account is disabled/ });
  await alert.waitFor();
  assert.doesNotMatch(await alert.innerText(), /not allowed|[{}]/, "the platform's sentence, not a generic one");
  await shot(up, "signin-disabled");
  await row.getByRole("button", { name: "Enable" }).click();
  await page.getByRole("status").filter({ hasText: `${s.user} is enabled again` }).waitFor();
  await up.getByRole("button", { name: "Sign in" }).click();
  await up.getByRole("heading", { name: "Devices" }).waitFor();
  await up.context().close();
});

step("health strip and charts page; keyboard: tab to a link and open it with Enter", async () => {
  const page = s.page;
  await page.goto(`/charts?device=${s.deviceId}`);
  await page.getByTestId("ready").filter({ hasText: "Ready" }).waitFor();
  await page.getByTestId("ingest-rate").waitFor();
  await page.locator(".chart-info").filter({ hasText: /Live/ }).waitFor();
  await shot(page, "charts");
  await page.goto("/devices");
  await page.getByRole("heading", { name: "Devices" }).waitFor();
  const link = page.getByRole("link", { name: s.deviceName });
  await link.focus();
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: s.deviceName }).waitFor();
  // Tab from the main region reaches the page's buttons in order.
  await page.locator("main").focus();
  for (let i = 0; i < 20; i++) {
    await page.keyboard.press("Tab");
    if ((await page.evaluate(() => document.activeElement?.textContent)) === "Add sensor") break;
  }
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Add sensor");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("name")), "name", "the form's first field has focus");
});
