// A resident under 14 opened at the counter: the guardian's field appears as soon as the ID number shows a child (China
// time); without a guardian the API's refusal is shown with its reason in plain words; with the guardian present the
// account opens and the consents are the guardian's.
import assert from "node:assert/strict";
import { loggedIn, shot } from "./support.mjs";

export default async function guardian(run, data) {
  const page = await loggedIn(run, "zj-staff");
  await page.locator("#find-query").waitFor();
  await page.locator("details > summary").focus();
  await page.keyboard.press("Enter");

  // An adult's ID number shows no guardian field; a 13-year-old's does.
  await page.locator("#open-id").fill(data.adult_id_number);
  assert.ok(await page.locator("#open-guardian-field").isHidden(), "no guardian field for an adult");
  await page.locator("#open-name").fill(data.name);
  await page.locator("#open-id").fill(data.id_number);
  await page.locator("#open-guardian-field").waitFor();
  await page.locator("#open-phone").fill(data.phone);

  // Without the guardian: refused, the reason shown where staff read it.
  await page.locator("#open-phone").press("Enter");
  const refusal = page.locator("#open-result .problem");
  await refusal.waitFor();
  const refused = await refusal.innerText();
  assert.match(refused, /GUARDIAN_REQUIRED/);
  assert.match(refused, /监护人/);
  await shot(page, "counter-guardian-required");

  // With the guardian present: the account opens, the consents given by the guardian.
  await page.locator("#open-guardian").fill(data.guardian);
  await page.locator("#open-guardian").press("Enter");
  const opened = page.locator("#open-result .notice");
  await opened.waitFor();
  const number = (await opened.innerText()).match(/[0-9]{16}/)[0];
  await page.locator("#resident-minor").waitFor();
  assert.match(await page.locator("#resident-minor").innerText(), new RegExp(data.guardian));
  await shot(page, "counter-guardian-opened");
  return { account: number };
}
