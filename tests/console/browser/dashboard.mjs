// The operations dashboard draws non-empty charts from the real system's figures (after the counter journey's
// events), in Chinese and after the switch in English; then the national figures page.
import assert from "node:assert/strict";
import { loggedIn, shot } from "./support.mjs";

export default async function dashboard(run) {
  const page = await loggedIn(run, "admin");
  await page.goto(`${page.url().split("#")[0]}#/dashboard`);
  for (const id of ["chart-day", "chart-behaviour", "chart-region"]) {
    const chart = page.locator(`#${id}`);
    await chart.locator("canvas").waitFor();
    assert.ok(Number(await chart.getAttribute("data-points")) > 0, `${id} has data`);
  }
  const issued = await page.locator("#national .card .value").first().innerText();
  assert.ok(Number(issued.replace(/,/g, "")) > 0, `national issued points: ${issued}`);
  await shot(page, "dashboard-zh");
  await page.locator("#lang").click();
  await page.locator("h1", { hasText: "Dashboard" }).waitFor();
  await page.locator("#chart-day canvas").waitFor();
  await shot(page, "dashboard-en");

  // National figures: the month's totals from every region, points by day of each kind, CO2e by behaviour, and the
  // points expiring in the coming months by region.
  await page.goto(`${page.url().split("#")[0]}#/national`);
  for (const id of ["chart-national-day", "chart-national-behaviour", "chart-expiring-ahead"]) {
    const chart = page.locator(`#${id}`);
    await chart.locator("canvas").waitFor();
    assert.ok(Number(await chart.getAttribute("data-points")) > 0, `${id} has data`);
  }
  const accounts = await page.locator("#national-cards .card .value").first().innerText();
  assert.ok(Number(accounts.replace(/,/g, "")) > 0, `accounts at the month's end: ${accounts}`);
  assert.ok((await page.locator("#national-figures tbody tr").count()) >= 2, "a row per region");
  await shot(page, "national-en");
}
