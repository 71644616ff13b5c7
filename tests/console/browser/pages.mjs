// Every operations page opens for the admin with real content, and a screenshot of each is kept: settlement, the
// explanation of the counter's first event, partners and keys, catalog and rule versions, adjustments, audit log,
// staff users (a community staff member added there signs in with the token it shows, to their counter).
import assert from "node:assert/strict";
import { base, loggedIn, shot } from "./support.mjs";

export default async function pages(run, data) {
  const page = await loggedIn(run, "admin");
  const open = async (route, ready) => {
    await page.goto(`${base}/console/#/${route}`);
    await page.locator(ready).first().waitFor();
  };

  await open("settlement", "#settlement table");
  await shot(page, "ops-settlement");

  await open("explain", "#explain-event");
  await page.locator("#explain-region").selectOption(data.account.slice(0, 6));
  await page.locator("#explain-event").fill(data.event_id);
  await page.locator("#explain-event").press("Enter");
  await page.locator("#explanation table").waitFor();
  assert.match(await page.locator("#explanation").innerText(), /rule_version_id/);
  await shot(page, "ops-explain");

  await open("partners", "#partners tbody tr");
  assert.match(await page.locator("#partners").innerText(), /community-centre/);
  await shot(page, "ops-partners");

  await open("catalog", "#catalog tbody tr");
  await shot(page, "ops-catalog");

  await open("adjustments", "#adjustments table");
  await shot(page, "ops-adjustments");

  await open("audit", "main tbody tr");
  assert.match(await page.locator("main").innerText(), /account\.open/);
  await shot(page, "ops-audit");

  await open("staff", "#staff-users tbody tr");
  await page.locator("#staff-id").fill("zj-xihu-desk");
  await page.locator("#staff-region").selectOption("330000");
  await page.locator("#staff-centre").fill("zj-xihu-3");
  await page.locator("#staff-centre").press("Enter");
  const issued = page.locator("#staff-result .notice");
  await issued.waitFor();
  const token = (await issued.innerText()).match(/cops_\S+/)[0];
  await shot(page, "ops-staff");
  run.tokens["zj-xihu-desk"] = token;
  const desk = await loggedIn(run, "zj-xihu-desk");
  await desk.waitForURL(/#\/counter$/);
  assert.match(await desk.locator("#who").innerText(), /330000\/zj-xihu-3/);
}
