// The counter journey with the keyboard alone: log in, open an account with phone binding and consent, find the
// resident again (masked), record a tree planting, see the balance, redeem and print the voucher, use it, print the
// monthly summary.
import assert from "node:assert/strict";
import { loggedIn, shot } from "./support.mjs";

export default async function counterJourney(run, data) {
  const page = await loggedIn(run, "zj-staff");
  await page.waitForURL(/#\/counter$/);
  await page.locator("#find-query").waitFor();
  await shot(page, "counter-start");

  // Open an account on site: every field reached with Tab, the form sent with Enter.
  await page.locator("details > summary").focus();
  await page.keyboard.press("Enter");
  await page.locator("#open-name").focus();
  await page.keyboard.type(data.name);
  await page.keyboard.press("Tab");
  await page.keyboard.type(data.id_number);
  await page.keyboard.press("Tab");
  await page.keyboard.type(data.phone);
  await page.keyboard.press("Enter");
  await page.locator("#open-result .notice").waitFor();
  const number = (await page.locator("#open-result .notice").innerText()).match(/[0-9]{16}/)[0];
  await page.locator("#balance").waitFor();
  assert.equal(await page.locator("#balance").innerText(), "0");
  await shot(page, "counter-opened");

  // Find the resident again by phone: shown masked, never in full.
  await page.locator("#find-query").fill(data.phone);
  await page.locator("#find-query").press("Enter");
  const row = page.locator("#find-result tbody tr").first();
  await row.waitFor();
  const shown = await row.innerText();
  assert.ok(shown.includes(number), shown);
  assert.ok(!shown.includes(data.phone), `the phone number is shown in full: ${shown}`);
  assert.ok(!shown.includes(data.id_number), `the ID number is shown in full: ${shown}`);
  await page.keyboard.press("Enter"); // the focused "choose" button
  await page.locator("#resident-summary").waitFor();
  await shot(page, "counter-found");

  // Record tree planting three times (one planting per event): the balance grows in large type.
  let eventId = "";
  for (let i = 0; i < 3; i += 1) {
    await page.locator("#record-behaviour").selectOption("tree_planting");
    await page.locator("#record-quantity").press("Enter");
    await page.locator("#record-result .notice").waitFor();
    eventId = eventId || (await page.locator("#record-result .notice").innerText()).match(/\((.+)\)/)[1];
  }
  const balance = Number(await page.locator("#balance").innerText());
  assert.ok(balance > 0, `balance after planting: ${balance}`);
  const fontSize = await page.locator("#balance").evaluate((n) => parseFloat(getComputedStyle(n).fontSize));
  assert.ok(fontSize >= 48, `the balance is in large type: ${fontSize}px`);
  const textSize = () => page.locator("#record-quantity").evaluate((n) => parseFloat(getComputedStyle(n).fontSize));
  const before = await textSize();
  assert.ok(before >= 20, `counter fields in large type: ${before}px`);
  await page.locator("#larger").focus();
  await page.keyboard.press("Enter");
  assert.ok((await textSize()) > before, "the larger-text switch enlarges the counter");
  await page.locator("#larger").press("Enter");
  await shot(page, "counter-recorded");

  // Redeem the cheapest reward and print its voucher.
  const options = await page.locator("#redeem-reward option").evaluateAll((os) =>
    os.map((o) => ({ value: o.value, price: Number(o.dataset.price) })));
  const cheapest = options.filter((o) => o.price <= balance).sort((x, y) => x.price - y.price)[0];
  assert.ok(cheapest, `a reward within ${balance} points: ${JSON.stringify(options)}`);
  await page.locator("#redeem-reward").selectOption(cheapest.value);
  await page.locator("#redeem-reward").press("Enter");
  await page.locator("#redeem-result > *").first().waitFor();
  assert.equal(await page.locator("#redeem-result .problem").count(), 0, await page.locator("#redeem-result").innerText());
  await page.locator("#print-voucher").waitFor();
  assert.equal(Number(await page.locator("#balance").innerText()), balance - cheapest.price);
  await page.keyboard.press("Enter"); // focus sits on the print button
  const printed = await page.evaluate(() => window.__printed.at(-1));
  const code = (await page.locator(".use-voucher").first().getAttribute("data-code"));
  assert.ok(printed.includes(code), `the printed voucher shows its code ${code}: ${printed}`);
  await shot(page, "counter-redeemed");

  // Use the voucher; using it again is refused and the reason is shown.
  await page.locator(`.use-voucher[data-code="${code}"]`).click();
  await page.locator("#voucher-result .notice").waitFor();
  await page.locator(`.use-voucher[data-code="${code}"]`).click();
  const refusal = page.locator("#voucher-result .problem");
  await refusal.waitFor();
  assert.match(await refusal.innerText(), /VOUCHER_ALREADY_USED/);
  await shot(page, "counter-voucher-refused");

  // The monthly summary goes to the printer with this month's entries.
  await page.locator("#summary-month").focus();
  await page.keyboard.press("Enter");
  await page.locator("#summary-result .notice").waitFor();
  const summary = await page.evaluate(() => window.__printed.at(-1));
  assert.ok(summary.includes(number), summary);
  return { account: number, balance, voucher: code, event_id: eventId };
}
