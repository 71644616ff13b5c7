// Campaigns: an operator creates a regional campaign on the page (its budget funded); a viewer sees it but has no
// form; at the counter staff accept the resident's offer and record the behaviour; the bonus paid shows as the
// campaign's spend, by region and nationally, in the table, the cards and the charts.
import assert from "node:assert/strict";
import { base, loggedIn, shot } from "./support.mjs";

// A deadline against a hang: incentives follows ingest's accepted events once they have settled (carbon up is
// started with a short settle time and follow interval for these tests, tests/console/conftest.py).
const SPEND_DEADLINE_MS = 90_000;
// How often the API is asked whether the bonus was paid: a cheap read, so the page is opened once it has been.
const SPEND_POLL_MS = 250;

/** The bonuses paid by a campaign so far, as the viewer reads them through the API. */
async function paidPoints(run, campaignId) {
  const answer = await fetch(`${base}/v1/regions/330000/campaigns`, {
    headers: { Authorization: `Bearer ${run.tokens.viewer}` },
  });
  if (answer.status !== 200) assert.fail(`campaigns: ${answer.status} ${await answer.text()}`);
  const campaign = (await answer.json()).campaigns.find((c) => c.campaign_id === campaignId);
  return campaign?.paid_points ?? 0;
}

export default async function campaigns(run, data) {
  const op = await loggedIn(run, "op1");
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

  const viewer = await loggedIn(run, "viewer");
  await viewer.goto(`${base}/console/#/campaigns`);
  await viewer.locator("#campaign-list table").waitFor();
  assert.equal(await viewer.locator("#campaign-create").count(), 0, "a viewer cannot create campaigns");
  assert.match(await viewer.locator("#campaign-list").innerText(), new RegExp(data.name));
  await shot(viewer, "campaigns-viewer");

  // At the counter: the resident's offer accepted for them, then the tree planting that fulfils it.
  const staff = await loggedIn(run, "zj-staff");
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

  // The bonus is paid once incentives has followed the event; then the spend shows on the operator's page.
  const started = Date.now();
  while ((await paidPoints(run, campaignId)) === 0) {
    assert.ok(Date.now() - started < SPEND_DEADLINE_MS, "the bonus was never paid");
    await new Promise((resolve) => setTimeout(resolve, SPEND_POLL_MS));
  }
  // Opened afresh (the sign-in lasts the tab's session): going to the route it is on would not draw it again.
  await op.reload();
  await op.locator("#campaign-spend .value").waitFor();
  const spend = Number((await op.locator("#campaign-spend .value").innerText()).replace(/,/g, ""));
  assert.equal(spend, 50);
  for (const id of ["chart-campaign-regions", "chart-campaign-spend"]) {
    await op.locator(`#${id} canvas`).waitFor();
    assert.ok(Number(await op.locator(`#${id}`).getAttribute("data-points")) > 0, `${id} has data`);
  }
  await shot(op, "campaigns-spend");
  return { campaign_id: campaignId };
}
