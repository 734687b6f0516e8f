// The web console in real headless Chromium: the original platform's GUI
// flow, the device page's snippets pasted into a shell, live and history
// charts fed through the HTTP gateway and MQTT, consumers with grants and
// keys, key rotation, a non-admin user, operator pages, and bad input in
// every form. Started by e2e/console_test.go (go test ./e2e -run Console).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
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
  const [, sensors] = await rest("GET", `/api/devices/${s.deviceId}/sensors`, admin);
  const list = sensors.result ?? sensors;
  assert.equal(list.length, 2);
  // Duplicate sensor: refused in words, nothing created.
  await addSensor("speed", "again", "double (number)", "km/h", "engine");
  await page.locator("form .error").filter({ hasText: /exists/i }).waitFor();
  const [, again] = await rest("GET", `/api/devices/${s.deviceId}/sensors`, admin);
  assert.equal((again.result ?? again).length, 2, "no duplicate sensor");
  await page.getByRole("button", { name: "Cancel" }).click();
  // The tree shows paths and the sensor ids.
  const speed = page.locator("li.sensor", { hasText: "speed" });
  s.speedId = await speed.getByTestId("sensor-id").innerText();
  s.doorId = await page.locator("li.sensor", { hasText: "door" }).getByTestId("sensor-id").innerText();
  assert.equal(s.speedId, String(list.find((x) => x.name === "speed").id));
  await page.locator(".tree .seg", { hasText: "engine/" }).waitFor();
  assert.match(await speed.locator(".sid").getAttribute("title"), /sensor_id/);
});

step("download device key: the file holds a working device token", async () => {
  const page = s.page;
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
  await page.locator(".chart-info").filter({ hasText: /Live: [2-9]\d* readings received|Live: \d{2,} readings/ }).waitFor();
  await page.getByTestId("last-seen").filter({ hasText: /ago/ }).waitFor({ timeout: 10_000 });
  await shot(page, "device");
});
