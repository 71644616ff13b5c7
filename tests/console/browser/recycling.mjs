// Recycling at a Guangzhou counter (its catalog offers it; the community partner was allowed it on start): a
// resident opened with the garbage-sorting consent brings 25 kg; the day's cap of 20 kg applies and the points show.
import assert from "node:assert/strict";
import { loggedIn, shot } from "./support.mjs";

export default async function recycling(run, data) {
  const page = await loggedIn(run, "gz-staff");
  await page.locator("details > summary").focus();
  await page.keyboard.press("Enter");
  await page.locator("#open-name").fill(data.name);
  await page.locator("#open-id").fill(data.id_number);
  await page.locator("#open-phone").fill(data.phone);
  await page.locator('#open input[type="checkbox"][value="GARBAGE_SORTING"]').check();
  await page.locator("#open-phone").press("Enter");
  await page.locator("#open-result .notice").waitFor();
  const number = (await page.locator("#open-result .notice").innerText()).match(/[0-9]{16}/)[0];
  await page.locator("#balance").waitFor();

  assert.ok((await page.locator("#record-behaviour option").allInnerTexts()).some((o) => /回收/.test(o)));
  await page.locator("#record-behaviour").selectOption("recycling_kg");
  await page.locator("#record-behaviour").press("Tab");
  await page.keyboard.press("Control+A");
  await page.keyboard.type("25");
  assert.match(await page.locator("#record label").nth(1).innerText(), /公斤/);
  await page.keyboard.press("Enter");
  const recorded = page.locator("#record-result .notice");
  await recorded.waitFor();
  const points = Number((await recorded.innerText()).match(/: ([0-9]+) \(/)[1]);
  assert.equal(Number(await page.locator("#balance").innerText()), points);
  assert.ok(points > 0, `recycling earned points: ${points}`);
  await shot(page, "counter-recycling");
  return { account: number, points };
}
