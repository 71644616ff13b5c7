// An admin changes what a data partner may report on the partners page: the demo partner is allowed tree planting
// in Zhejiang too (ticked in the region's catalog, with a reason); the page shows the list before and after.
import assert from "node:assert/strict";
import { base, loggedIn, shot } from "./support.mjs";

export default async function partnerChange(run) {
  const page = await loggedIn(run, "admin");
  await page.goto(`${base}/console/#/partners`);
  await page.locator("#partners-region").selectOption("330000");
  // Choosing the region draws its change form anew: fill in the one drawn for it, not the one it replaces.
  await page.locator('#partner-change[data-ready="true"]').waitFor();
  await page.locator("#change-partner").selectOption("demo-partner");
  await page.locator('.change-behaviour[value="tree_planting"]').check();
  await page.locator("#change-reason").fill("also organises tree planting days");
  await page.locator("#change-reason").press("Enter");
  const done = page.locator("#change-result .notice");
  await done.waitFor();
  assert.match(await done.innerText(), /→ .*tree_planting/);
  // The stored list, read afresh: the page is opened again rather than read while its own listings may still arrive.
  await page.reload();
  await page.locator("#partners-region").selectOption("330000");
  await page.waitForFunction(() =>
    /demo-partner[^\n]*tree_planting/.test(document.querySelector("#partners")?.innerText ?? ""),
    undefined, { timeout: 60000 },
  ).catch(async (error) => {
    // What the page and the API show when the changed row does not appear, for whoever reads the failure.
    await shot(page, "ops-partner-change-failed");
    const drawn = await page.evaluate(() => document.querySelector("main")?.innerText ?? "(no main)");
    throw new Error(`${error.message}\nregion ${await page.locator("#partners-region").inputValue()}; page:\n${drawn}`);
  });
  await shot(page, "ops-partner-changed");
}
