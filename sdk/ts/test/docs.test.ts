// Swagger UI at /docs in headless Chromium: it loads the OpenAPI 3.1
// document, "Authorize" takes a bearer token, and "Try it out" then calls
// the REST API with it (401 before, 200 after). Playwright gives Chromium a
// fresh temporary profile.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";

import { createClient } from "../src/index.js";
import { adminPassword, startPlatform, type Platform } from "./server.js";

const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

let platform: Platform;
let browser: Browser;
before(async () => {
  assert.ok(existsSync(chromiumPath), `${chromiumPath} missing: apt-get install chromium (or set CHROMIUM)`);
  platform = await startPlatform();
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
});
after(async () => {
  await browser?.close();
  await platform?.stop();
});

/** Opens GET /api/me, presses "Try it out" and "Execute", returns the status the UI shows. */
async function tryGetCurrentUser(page: Page): Promise<{ status: number; auth: string | undefined }> {
  const op = page.locator("#operations-CoreService-CoreService_GetCurrentUser");
  if (!(await op.locator(".try-out__btn").isVisible())) {
    await op.locator(".opblock-summary").first().click();
  }
  const tryOut = op.locator("button.try-out__btn");
  if ((await tryOut.textContent())?.includes("Try it out")) await tryOut.click();
  const req = page.waitForRequest((r) => r.url().endsWith("/api/me"));
  const resp = page.waitForResponse((r) => r.url().endsWith("/api/me"));
  await op.locator("button.execute").click();
  const headers = (await req).headers();
  const status = (await resp).status();
  await op.locator(".live-responses-table tbody .response-col_status").first().waitFor();
  assert.match((await op.locator(".live-responses-table tbody .response-col_status").first().textContent()) ?? "", new RegExp(String(status)));
  await op.locator("button.btn-clear").click().catch(() => {});
  return { status, auth: headers["authorization"] };
}

test("Swagger UI at /docs: loads the 3.1 document and Authorize sends the bearer token", async () => {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    // The 401 of the first "Try it out" is expected; CSP violations and script errors are not.
    if (m.type() === "error" && !m.text().includes("status of 401")) errors.push(m.text());
  });
  await page.goto(`${platform.baseUrl}/docs`);
  await page.locator(".swagger-ui .info .title").waitFor();
  assert.match((await page.locator(".swagger-ui .info .title").textContent()) ?? "", /iotplatform API/);
  assert.match((await page.locator(".swagger-ui .info .title").textContent()) ?? "", /OAS 3\.1/);
  // Every tag and the search proxy are listed.
  await page.locator("#operations-QueryService-ConsumerSearch").waitFor();

  const before = await tryGetCurrentUser(page);
  assert.equal(before.status, 401);
  assert.equal(before.auth, undefined);

  const iot = createClient(platform.baseUrl);
  const { token } = await iot.signIn("root", adminPassword);
  await page.locator("button.authorize").first().click();
  const dialog = page.locator(".dialog-ux .modal-ux");
  await dialog.locator("input").first().fill(token);
  await dialog.locator("button.authorize").click();
  await dialog.locator("button.btn-done, button.close-modal").first().click();

  const afterAuth = await tryGetCurrentUser(page);
  assert.equal(afterAuth.auth, `Bearer ${token}`);
  assert.equal(afterAuth.status, 200);
  assert.deepEqual(errors, [], `browser errors: ${errors.join("\n")}`);
  await page.close();
});
