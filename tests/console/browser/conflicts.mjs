// A real claim conflict: the demo partner reported a tree planting (sign-in sheet id) first; the counter records the
// same sheet id for the resident and earns nothing for it (DUPLICATE_ACTIVITY); the conflicts page shows the day
// and the partner pair in its chart and tables.
import assert from "node:assert/strict";
import { base, loggedIn, shot } from "./support.mjs";

export default async function conflicts(run, data) {
  const staff = await loggedIn(run, "zj-staff");
  await staff.locator("#find-query").fill(data.account);
  await staff.locator("#find-query").press("Enter");
  await staff.locator("#find-result button.choose").press("Enter");
  await staff.locator("#record-behaviour").selectOption("tree_planting");
  await staff.locator("#record-evidence").fill(data.evidence);
  await staff.locator("#record-evidence").press("Enter");
  const recorded = staff.locator("#record-result .notice");
  await recorded.waitFor();
  assert.match(await recorded.innerText(), /DUPLICATE_ACTIVITY/);
  await shot(staff, "counter-duplicate-activity");

  const viewer = await loggedIn(run, "viewer");
  await viewer.goto(`${base}/console/#/conflicts`);
  await viewer.locator("#conflicts table").first().waitFor();
  await shot(viewer, "ops-conflicts");
  await viewer.locator("#chart-conflicts canvas").waitFor();
  assert.ok(Number(await viewer.locator("#chart-conflicts").getAttribute("data-points")) > 0, "the chart has data");
  const shown = await viewer.locator("#conflicts").innerText();
  assert.match(shown, /330000\/demo-partner → 330000\/community-centre/);
  await shot(viewer, "ops-conflicts");
}
