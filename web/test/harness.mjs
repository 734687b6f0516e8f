// Shared helpers of the console's browser tests: real headless Chromium
// (Debian's /usr/bin/chromium) driven by playwright-core, against a running
// iotplatform started by the Go test (e2e/console_test.go) — URLs in env.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export const env = {
  api: must("IOT_CONSOLE_API"), // http://127.0.0.1:port
  http: must("IOT_CONSOLE_HTTP"), // http://127.0.0.1:port/
  mqttHost: must("IOT_CONSOLE_MQTT_HOST"),
  mqttPort: must("IOT_CONSOLE_MQTT_PORT"),
  password: must("IOT_CONSOLE_ADMIN_PASSWORD"),
  artifacts: process.env.IOT_CONSOLE_ARTIFACTS || path.join(tmpdir(), "iot-console-artifacts"),
  chromium: process.env.CHROMIUM || "/usr/bin/chromium",
  binDir: process.env.IOT_CONSOLE_BIN_DIR || "",
};

function must(k) {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run through e2e/console_test.go`);
  return v;
}

export async function launch() {
  mkdirSync(env.artifacts, { recursive: true });
  return chromium.launch({
    executablePath: env.chromium,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** A fresh page (own context: own sessionStorage) that fails the test on CSP violations and page errors. */
export async function newPage(browser, problems) {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 }, baseURL: env.api });
  const page = await ctx.newPage();
  page.on("console", (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to/i.test(t)) problems.push(`CSP: ${t}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.setDefaultTimeout(15_000);
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(env.artifacts, `${name}.png`), fullPage: true });
}

/** REST call with a bearer token; returns [status, json]. */
export async function rest(method, p, token, body) {
  const r = await fetch(env.api + p, {
    method,
    headers: { "Content-Type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return [r.status, json];
}

export async function adminToken(user = "root", password = env.password) {
  const [s, j] = await rest("POST", "/api/users/signin", null, { username: user, password });
  if (s !== 200) throw new Error(`sign in ${user}: ${s} ${JSON.stringify(j)}`);
  return j.token;
}

export async function signIn(page, user, password) {
  await page.goto("/");
  await page.getByLabel("Username", { exact: true }).fill(user);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Devices" }).waitFor();
}

export function uniq(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * A dependent step: runs fn as a node:test test unless an earlier step of
 * the same chain failed (then it fails at once instead of timing out);
 * a failing step leaves a screenshot of its page in the artifacts folder.
 */
export function chain(test, getPage) {
  let failed = null;
  let n = 0;
  return (name, fn) =>
    test(name, async () => {
      const i = ++n;
      if (failed) throw new Error(`not run: step “${failed}” failed`);
      try {
        await fn();
      } catch (e) {
        failed = name;
        const page = getPage();
        if (page) await shot(page, `failed-step-${i}`).catch(() => {});
        throw e;
      }
    });
}
