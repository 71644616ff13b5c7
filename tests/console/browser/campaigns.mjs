// Campaigns: an operator creates a regional campaign on the page (its budget funded); a viewer sees it but has no
// form; at the counter staff accept the resident's offer and record the behaviour; the bonus paid shows as the
// campaign's spend, by region and nationally, in the table, the cards and the charts.
import assert from "node:assert/strict";
import { base, data, loggedIn, scenario, shot } from "./support.mjs";

// Incentives follows ingest's accepted events every 10 s by default: the spend shows within a few rounds.
const SPEND_DEADLINE_MS = 90_000;

await scenario(async (b) => {
  const op = await loggedIn(b, "op1");
  await op.goto(`${base}/console/#/campaigns`);
  await op.locator("#campaign-create").waitFor({ state: "attached" });
  await op.locator("details > summary").focus();
  await op.keyboard.press("Enter");
  await op.locator("#campaign-scope").selectOption("330000");
  await op.locator("#campaign-name").fill(data.name);
  await op.locator("#campaign-behaviour").selectOption("tree_planting");
  await op.locator("#campaign-bonus").fill("50");
  await op.locator("#campaign-target").selectOption("EVERYONE");
  await op.locator("#campaign-budget-points").fill("1000");
  await op.locator("#campaign-budget-points").press("Enter");
  const created = op.locator("#campaign-result .notice");
  await created.waitFor();
  const campaignId = (await created.innerText()).split(": ").at(-1).trim();
  assert.match(await op.locator("#campaign-list").innerText(), new RegExp(data.name));
  await shot(op, "campaigns-created");

  const viewer = await loggedIn(b, "viewer");
  await viewer.goto(`${base}/console/#/campaigns`);
  await viewer.locator("#campaign-list table").waitFor();
  assert.equal(await viewer.locator("#campaign-create").count(), 0, "a viewer cannot create campaigns");
  assert.match(await viewer.locator("#campaign-list").innerText(), new RegExp(data.name));
  await shot(viewer, "campaigns-viewer");

  // At the counter: the resident's offer accepted for them, then the tree planting that fulfils it.
  const staff = await loggedIn(b, "zj-staff");
  await staff.locator("#find-query").fill(data.account);
  await staff.locator("#find-query").press("Enter");
  await staff.locator("#find-result button.choose").press("Enter");
  const accept = staff.locator(`.accept-offer[data-campaign="${campaignId}"]`);
  await accept.waitFor();
  await accept.press("Enter");
  await staff.locator("#offer-result .notice").waitFor();
  await staff.locator("#record-behaviour").selectOption("tree_planting");
  await staff.locator("#record-quantity").press("Enter");
  await staff.locator("#record-result .notice").waitFor();
  await shot(staff, "counter-offer-accepted");

  // The bonus is paid once incentives has followed the event: the spend appears on the operator's page.
  const started = Date.now();
  let spend = 0;
  while (spend === 0) {
    assert.ok(Date.now() - started < SPEND_DEADLINE_MS, "the bonus paid never showed as the campaign's spend");
    await op.goto(`${base}/console/#/dashboard`);
    await op.goto(`${base}/console/#/campaigns`);
    await op.locator("#campaign-spend .value").waitFor();
    spend = Number((await op.locator("#campaign-spend .value").innerText()).replace(/,/g, ""));
    if (spend === 0) await op.waitForTimeout(3000);
  }
  assert.equal(spend, 50);
  for (const id of ["chart-campaign-regions", "chart-campaign-spend"]) {
    await op.locator(`#${id} canvas`).waitFor();
    assert.ok(Number(await op.locator(`#${id}`).getAttribute("data-points")) > 0, `${id} has data`);
  }
  await shot(op, "campaigns-spend");
  console.log(JSON.stringify({ campaign_id: campaignId }));
});
