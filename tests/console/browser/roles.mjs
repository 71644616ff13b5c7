// Role limits as the API has them: a viewer gets no counter, community staff no audit log and no resident of
// another region (the refusal and its reason shown), the admin everything.
import assert from "node:assert/strict";
import { base, loggedIn, shot } from "./support.mjs";

const links = (page) => page.locator("#nav a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));

export default async function roles(run, data) {
  const viewer = await loggedIn(run, "viewer");
  await viewer.waitForURL(/#\/dashboard$/);
  assert.ok(!(await links(viewer)).includes("#/counter"), "a viewer has no counter");
  await viewer.goto(`${base}/console/#/counter`);
  await viewer.locator("main .problem").waitFor();
  await shot(viewer, "roles-viewer-no-counter");

  const staff = await loggedIn(run, "zj-staff");
  const staffLinks = await links(staff);
  assert.ok(staffLinks.includes("#/counter") && !staffLinks.includes("#/audit"), staffLinks.join(" "));
  await staff.locator("#find-query").fill(data.other_region_account);
  await staff.locator("#find-query").press("Enter");
  const refusal = staff.locator("#find-result .problem");
  await refusal.waitFor();
  assert.match(await refusal.innerText(), /STAFF_REGION_MISMATCH/);
  await shot(staff, "roles-staff-other-region-refused");
  await staff.goto(`${base}/console/#/dashboard`);
  await staff.locator("#chart-region").waitFor();
  const regions = await staff.locator("#dashboard tbody tr").count();
  assert.equal(regions, 1, "community staff see their own region only");

  const admin = await loggedIn(run, "admin");
  const adminLinks = await links(admin);
  for (const page of ["#/counter", "#/dashboard", "#/partners", "#/audit"]) assert.ok(adminLinks.includes(page), page);
}
