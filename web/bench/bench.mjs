// Budgets of the web console, measured in real headless Chromium against
// the built binary (bin/iotplatform, started here on free loopback ports
// with a fresh data dir). Run: scripts/bench/console.sh (or make bench-console).
//   1. bundle size: every file of web/dist gzipped (-9), against 200 KB;
//   2. first load to interactive (cold cache, new browser context), signed
//      out (/signin) and signed in (/devices with a session), median of N,
//      beside a reference: loading /healthz in the same browser;
//   3. history chart of 100,000 raw readings: the draw (uPlot) time, beside
//      the same chart with 1,000 readings;
//   4. live chart with 1,000 readings/s pushed over HTTP (100 every 100 ms)
//      for 10 s: frames per second and the longest frame gap, beside the
//      same page idle.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, cpus, totalmem } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = process.env.IOT_BIN || path.join(webDir, "..", "bin", "iotplatform");
const RUNS = Number(process.env.RUNS || 10);
const out = [];
const log = (...a) => {
  console.log(...a);
  out.push(a.join(" "));
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const freePort = () =>
  new Promise((res) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });

// 1. Bundle size.
let raw = 0;
let gz = 0;
const walk = (d) => {
  for (const e of readdirSync(d)) {
    const p = path.join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else {
      const b = readFileSync(p);
      raw += b.length;
      gz += gzipSync(b, { level: 9 }).length;
    }
  }
};
walk(path.join(webDir, "dist"));
log(`bundle: ${(raw / 1024).toFixed(1)} KB raw, ${(gz / 1024).toFixed(1)} KB gzipped (budget 200 KB: ${((gz / 1024 / 200) * 100).toFixed(0)}% of it)`);

// Start the platform.
const [api, http, ws, mqtt] = [await freePort(), await freePort(), await freePort(), await freePort()];
const dataDir = mkdtempSync(path.join(tmpdir(), "iot-console-bench-"));
const password = "bench-" + Math.random().toString(36).slice(2, 12);
const proc = spawn(bin, ["serve", "--data-dir", dataDir, "--api-addr", `127.0.0.1:${api}`, "--http-addr", `127.0.0.1:${http}`, "--ws-addr", `127.0.0.1:${ws}`, "--mqtt-addr", `127.0.0.1:${mqtt}`, "--log-level", "warn"], {
  env: { ...process.env, IOT_ADMIN_PASSWORD: password },
  stdio: ["ignore", "ignore", "inherit"],
});
// Never leave the platform running, whatever happens below.
process.on("exit", () => proc.kill("SIGKILL"));
process.on("uncaughtException", (e) => {
  console.error(e);
  process.exit(1);
});
process.on("unhandledRejection", (e) => {
  console.error(e);
  process.exit(1);
});
const base = `http://127.0.0.1:${api}`;
const ingestURL = `http://127.0.0.1:${http}/`;
for (let i = 0; ; i++) {
  try {
    if ((await fetch(base + "/readyz")).ok) break;
  } catch {}
  if (i > 300) throw new Error("platform not ready");
  await new Promise((r) => setTimeout(r, 100));
}
const restCall = async (method, p, token, body) => {
  const r = await fetch(base + p, { method, headers: { "Content-Type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body && JSON.stringify(body) });
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
  return r.json();
};
const signin = await restCall("POST", "/api/users/signin", null, { username: "root", password });
const jwt = signin.token;
const dev = (await restCall("POST", "/api/devices", jwt, { name: "bench", description: "console benchmark" })).result;
const mk = async (name) => (await restCall("POST", `/api/devices/${dev.id}/sensors`, jwt, { name, value_type: "VALUE_TYPE_DOUBLE", unit: "u" })).sensor ?? (await restCall("GET", `/api/devices/${dev.id}/sensors`, jwt)).result.find((s) => s.name === name);
const big = await mk("big");
const small = await mk("small");
const live = await mk("live");
const devToken = (await restCall("GET", `/api/devices/${dev.id}/key`, jwt)).token;
const push = async (readings) => {
  const r = await fetch(ingestURL, { method: "POST", headers: { authorization: `Bearer ${devToken}`, "Content-Type": "application/json" }, body: JSON.stringify(readings) });
  if (!r.ok) throw new Error(`push: ${r.status} ${await r.text()}`);
};
const t0 = Date.UTC(2026, 0, 1);
for (let b = 0; b < 10; b++) await push(Array.from({ length: 10_000 }, (_, i) => ({ sensor_id: big.id, timestamp: t0 + (b * 10_000 + i) * 1000, value: Math.sin((b * 10_000 + i) / 500) * 50 + (i % 13) })));
await push(Array.from({ length: 1000 }, (_, i) => ({ sensor_id: small.id, timestamp: t0 + i * 100_000, value: Math.sin(i / 50) * 50 })));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const session = JSON.stringify({ token: jwt, expires: Date.now() + 3_600_000, userId: String(signin.user.id), username: "root", admin: true });

// 2. First load to interactive.
async function load(url, withSession, mark) {
  const ctx = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 900 } });
  if (withSession) await ctx.addInitScript((s) => sessionStorage.setItem("iotplatform.session", s), session);
  const page = await ctx.newPage();
  await page.goto(url, { waitUntil: "commit" });
  let ms;
  if (mark) {
    await page.waitForFunction(() => performance.getEntriesByName("iot-console-interactive").length > 0, null, { timeout: 20_000 });
    ms = await page.evaluate(() => performance.getEntriesByName("iot-console-interactive")[0].startTime);
    if (process.env.DEBUG) console.log(url, ms, await page.evaluate(() => JSON.stringify(performance.getEntriesByType("navigation")[0])), await page.evaluate(() => JSON.stringify(performance.getEntriesByType("resource").map((r) => [r.name, r.startTime, r.responseEnd]))));
  } else {
    await page.waitForLoadState("load");
    ms = await page.evaluate(() => performance.getEntriesByType("navigation")[0].loadEventEnd);
  }
  await ctx.close();
  return ms;
}
const loads = { ref: [], signin: [], devices: [] };
for (let i = 0; i < RUNS; i++) {
  loads.ref.push(await load("/healthz", false, false));
  loads.signin.push(await load("/signin", false, true));
  loads.devices.push(await load("/devices", true, true));
}
const ref = median(loads.ref);
log(`first load to interactive, median of ${RUNS} cold loads: /signin ${median(loads.signin).toFixed(0)} ms, /devices signed in (one ListDevices) ${median(loads.devices).toFixed(0)} ms; reference /healthz ${ref.toFixed(0)} ms (ratios ${(median(loads.signin) / ref).toFixed(1)}x, ${(median(loads.devices) / ref).toFixed(1)}x); budget 1000 ms`);

// 3. History chart draw.
async function historyDraw(sensorId, n, bucketsToo) {
  const ctx = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 900 } });
  await ctx.addInitScript((s) => sessionStorage.setItem("iotplatform.session", s), session);
  const page = await ctx.newPage();
  await page.goto(`/devices/${dev.id}`);
  await page.getByRole("heading", { name: "bench" }).waitFor();
  for (const cb of await page.getByRole("checkbox", { name: /big|small|live/ }).all()) {
    if ((await cb.getAttribute("value")) === String(sensorId)) await cb.check();
    else await cb.uncheck();
  }
  await page.getByLabel("Time range", { exact: true }).selectOption("custom");
  const fmt = (ms) => new Date(ms).toISOString().slice(0, 19);
  await page.getByLabel("From", { exact: true }).fill(fmt(t0));
  await page.getByLabel("To", { exact: true }).fill(fmt(t0 + 100_000_000));
  await page.getByLabel(/Raw readings/).check();
  await page.evaluate(() => performance.clearMeasures("iot-chart-draw"));
  await page.getByRole("button", { name: "Show" }).click();
  await page.locator(".chart-info").filter({ hasText: `${n} raw readings` }).waitFor({ timeout: 60_000 });
  // The draw of the chart holding [min, max] points (the measure's detail).
  const drawOf = async (min, max) => {
    if (process.env.DEBUG) console.log(await page.evaluate(() => JSON.stringify(performance.getEntriesByName("iot-chart-draw").map((e) => [e.startTime, e.duration, e.detail]))));
    const h = await page.waitForFunction(([min, max]) => performance.getEntriesByName("iot-chart-draw").find((e) => e.detail && e.detail.points >= min && e.detail.points <= max)?.duration, [min, max], { timeout: 60_000 });
    return h.jsonValue();
  };
  const raw = await drawOf(n, n);
  if (!bucketsToo) {
    await ctx.close();
    return { raw };
  }
  // The same range bucketed (what the chart shows without "raw").
  await page.evaluate(() => performance.clearMeasures("iot-chart-draw"));
  await page.getByLabel(/Raw readings/).uncheck();
  try {
    await page.locator(".chart-info").filter({ hasText: "buckets of" }).waitFor({ timeout: 60_000 });
  } catch (e) {
    throw new Error(`bucketed chart: ${await page.locator(".chart-info").innerText()}`);
  }
  const buckets = await drawOf(1, n - 1);
  await ctx.close();
  return { raw, buckets };
}
const d100k = [];
const d1k = [];
const dBuckets = [];
for (let i = 0; i < Math.min(RUNS, 5) && !process.env.SKIP_HISTORY; i++) {
  const a = await historyDraw(big.id, 100000, true);
  d100k.push(a.raw);
  dBuckets.push(a.buckets);
  d1k.push((await historyDraw(small.id, 1000, false)).raw);
}
log(`history chart draw (uPlot, 1280x900 window), median of ${d100k.length}: 100,000 raw readings ${median(d100k).toFixed(1)} ms, the same range as min/avg/max buckets ${median(dBuckets).toFixed(1)} ms; reference 1,000 raw readings ${median(d1k).toFixed(1)} ms (ratio ${(median(d100k) / median(d1k)).toFixed(1)}x); budget 300 ms`);

// 4. Live chart at 1,000 readings/s.
async function liveRun(rate) {
  const ctx = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 900 } });
  await ctx.addInitScript((s) => sessionStorage.setItem("iotplatform.session", s), session);
  const page = await ctx.newPage();
  await page.goto(`/devices/${dev.id}`);
  await page.getByRole("heading", { name: "bench" }).waitFor();
  for (const cb of await page.getByRole("checkbox", { name: /big|small|live/ }).all()) {
    if ((await cb.getAttribute("value")) === String(live.id)) await cb.check();
    else await cb.uncheck();
  }
  await page.locator(".chart-info").filter({ hasText: "Live" }).waitFor();
  await page.waitForTimeout(500);
  await page.evaluate(() => {
    window.__frames = [];
    const f = (t) => {
      window.__frames.push(t);
      if (window.__frames.length < 100000) requestAnimationFrame(f);
    };
    requestAnimationFrame(f);
    performance.clearMeasures("iot-chart-live-frame");
  });
  const seconds = 10;
  const start = Date.now();
  let sent = 0;
  if (rate > 0) {
    const per = rate / 10;
    for (let tick = 0; tick < seconds * 10; tick++) {
      const due = start + tick * 100;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const now = Date.now();
      void push(Array.from({ length: per }, (_, i) => ({ sensor_id: live.id, timestamp: now + i / per, value: Math.sin((sent + i) / 100) * 10 })));
      sent += per;
    }
  }
  const left = start + seconds * 1000 - Date.now();
  if (left > 0) await page.waitForTimeout(left);
  const r = await page.evaluate(() => {
    const f = window.__frames;
    let gap = 0;
    for (let i = 1; i < f.length; i++) gap = Math.max(gap, f[i] - f[i - 1]);
    const m = performance.getEntriesByName("iot-chart-live-frame");
    return { fps: (f.length - 1) / ((f.at(-1) - f[0]) / 1000), gap, redraws: m.length, redrawMs: m.reduce((a, x) => a + x.duration, 0) / Math.max(1, m.length), info: document.querySelector(".chart-info")?.textContent };
  });
  await page.waitForTimeout(1000);
  const info = await page.locator(".chart-info").innerText();
  await ctx.close();
  return { ...r, sent, info };
}
const idle = await liveRun(0);
const busy = await liveRun(1000);
log(`live chart, 10 s: idle ${idle.fps.toFixed(1)} fps (longest frame gap ${idle.gap.toFixed(0)} ms); at 1,000 readings/s (HTTP, 100 per 100 ms, ${busy.sent} sent) ${busy.fps.toFixed(1)} fps (ratio ${(busy.fps / idle.fps).toFixed(2)}), longest frame gap ${busy.gap.toFixed(0)} ms, ${busy.redraws} redraws of ${busy.redrawMs.toFixed(1)} ms on average; "${busy.info}"; budget ≥ 30 fps`);

await browser.close();
proc.kill("SIGTERM");
await new Promise((r) => proc.on("exit", r));
rmSync(dataDir, { recursive: true, force: true });
log(`machine: ${cpus().length} × ${cpus()[0].model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, Chromium ${browser.version()}`);
