// Four eyes: one operator requests an adjustment, cannot approve it himself (the refusal and its reason shown),
// a second operator approves and the ledger posts it.
import assert from "node:assert/strict";
import { base, loggedIn, shot } from "./support.mjs";

export default async function adjustments(run, data) {
  const first = await loggedIn(run, "op1");
  await first.goto(`${base}/console/#/adjustments`);
  await first.locator("#adjust-account").fill(data.account);
  await first.locator("#adjust-amount").fill("50");
  await first.locator("#adjust-reason").fill("补录社区植树活动积分");
  await first.locator("#adjust-reason").press("Enter");
  const row = first.locator("#adjustments tbody tr", { hasText: data.account }).first();
  await row.waitFor();
  assert.match(await row.innerText(), /PENDING/);
  await row.locator("button.approve").click();
  const refusal = first.locator("#adjustments-result .problem");
  await refusal.waitFor();
  assert.match(await refusal.innerText(), /SELF_APPROVAL_FORBIDDEN/);
  await shot(first, "adjustments-own-approval-refused");

  const second = await loggedIn(run, "op2");
  await second.goto(`${base}/console/#/adjustments`);
  const pending = second.locator("#adjustments tbody tr", { hasText: data.account }).first();
  await pending.locator("button.approve").click();
  await second.locator("#adjustments-result .notice").waitFor();
  assert.match(await second.locator("#adjustments tbody tr", { hasText: data.account }).first().innerText(), /POSTED/);
  await shot(second, "adjustments-approved");
}
