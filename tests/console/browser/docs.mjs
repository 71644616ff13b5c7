// /docs (Swagger UI) and /redoc render the API's document with no request leaving the ops API's origin, and so
// does every console page visited by the other scenarios' pages (the console's CSP sees to those).
import assert from "node:assert/strict";
import { base, shots } from "./support.mjs";
import path from "node:path";

// A deadline against a hang, not a measurement: Swagger UI lays out the whole document (about 30 s on a loaded
// 2-core machine, past playwright's default 30 s).
const RENDER_DEADLINE_MS = 120_000;

export default async function docs(run) {
  const page = await run.newPage({ viewport: { width: 1280, height: 900 } });
  // A request for another origin is fine only when the page's policy stopped it before it left.
  const elsewhere = [];
  const local = (url) => url.startsWith(base) || url.startsWith("data:") || url.startsWith("blob:");
  page.on("requestfinished", (request) => { if (!local(request.url())) elsewhere.push(request.url()); });
  page.on("requestfailed", (request) => {
    const why = request.failure()?.errorText ?? "";
    if (!local(request.url()) && !/BLOCKED_BY_CSP|csp/i.test(why)) elsewhere.push(`${request.url()} (${why})`);
  });
  await page.goto(`${base}/docs`);
  await page.locator(".opblock-summary-path", { hasText: "/v1/dashboard" }).first().waitFor({ timeout: RENDER_DEADLINE_MS });
  await page.screenshot({ path: path.join(shots, "docs-swagger-ui.png") });
  await page.goto(`${base}/redoc`);
  await page.locator("h1", { hasText: "carbon-account ops API" }).waitFor({ timeout: RENDER_DEADLINE_MS });
  await page.waitForLoadState("networkidle");
  await page.screenshot({ path: path.join(shots, "docs-redoc.png") });
  assert.deepEqual(elsewhere, [], "requests left the machine");
}
