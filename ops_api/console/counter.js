// Counter pages: find a resident (masked), open an account on site, record counter behaviours, balance and expiring
// points in large type, redeem and print the voucher, use a voucher, print the monthly summary. Every control is a
// form field or button in reading order, so the whole page works with Tab, Enter and Space alone.
import { api, must, session } from "./api.js";
import { lang, t } from "./i18n.js";
import { chinaDay, field, h, isoDay, onSubmit, printOut, showNotice, showProblem, table } from "./ui.js";

const CONSENTS = ["COMMUNITY_ACTIVITY", "GARBAGE_SORTING", "TRANSIT"];
// Counter behaviours; recycling_kg only where the resident's region's catalog offers it.
const BEHAVIOURS = ["tree_planting", "sorting_supervisor_day", "recycling_kg"];
const WEIGHED = "recycling_kg";
// Points expiring within this many days are listed by day under the balance.
const EXPIRING_DAYS = 90;

/** @typedef {import("./openapi").components["schemas"]} Schemas */

/** @param {HTMLElement} main */
export async function counterPage(main) {
  const regions = (await must(api.GET("/v1/regions"))).regions;
  const me = /** @type {Schemas["Me"]} */ (session.me);
  const mine = me.region_code ? regions.filter((r) => r.region_code === me.region_code) : regions;
  const resident = h("section", { id: "resident", "aria-live": "polite" });
  main.replaceChildren(
    h("div", { class: "counter" }, findPanel(resident), openPanel(mine, me, resident), resident),
  );
}

/** @param {HTMLElement} resident */
function findPanel(resident) {
  const query = h("input", { id: "find-query", inputmode: "numeric", pattern: "[0-9]{11}|[0-9]{16}", required: true, autofocus: true });
  const out = h("div", { id: "find-result" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "find" },
    field("find_query", query), h("button", { class: "primary", type: "submit", text: t("find_go") })));
  onSubmit(form, out, async () => {
    const value = /** @type {HTMLInputElement} */ (query).value.trim();
    const byNumber = value.length === 16;
    const query_ = byNumber ? { account_number: value } : { phone_number: value };
    const found = (await must(api.GET("/v1/accounts/search", { params: { query: query_ } }))).accounts;
    if (!found.length) return showNotice(out, t("find_none"));
    out.replaceChildren(table([
      ["account", (a) => a.account_number],
      ["name", (a) => a.masked_name],
      ["id_number", (a) => a.masked_id_number],
      ["phone", (a) => a.masked_phone_number],
      ["state", (a) => a.state],
      ["choose", (a) => h("button", { type: "button", class: "choose", text: t("choose"),
        onclick: () => showResident(resident, a.account_number) })],
    ], found));
    /** @type {HTMLElement | null} */ (out.querySelector("button.choose"))?.focus();
  });
  return h("section", { class: "panel" }, h("h2", { text: t("find_title") }), form, out);
}

/**
 * @param {Schemas["Region"][]} regions
 * @param {Schemas["Me"]} me
 * @param {HTMLElement} resident
 */
function openPanel(regions, me, resident) {
  const region = h("select", { id: "open-region" },
    ...regions.map((r) => h("option", { value: r.region_code, text: `${r.region_code} ${lang === "zh" ? r.name_zh : r.name_en}` })));
  const name = h("input", { id: "open-name", required: true, maxlength: 64 });
  const idNumber = h("input", { id: "open-id", required: true, pattern: "[0-9]{17}[0-9Xx]" });
  const phone = h("input", { id: "open-phone", required: true, inputmode: "numeric", pattern: "[0-9]{11}" });
  const centre = h("input", { id: "open-centre", value: me.centre_id || "", disabled: me.role === "community_staff" });
  // Under 14 (by the ID number's birth date, China time) the account opens only with a guardian present, who also
  // gives the consents (ADR 0206): the field appears as soon as the ID number shows a child.
  const guardian = h("input", { id: "open-guardian", inputmode: "numeric", pattern: "[0-9]{16}", size: 18 });
  const guardianField = h("label", { id: "open-guardian-field", hidden: true },
    h("span", { text: t("guardian") }), guardian, h("small", { text: t("guardian_hint") }));
  const minorNow = () => isMinor(/** @type {HTMLInputElement} */ (idNumber).value.trim());
  idNumber.addEventListener("input", () => {
    const minor = minorNow();
    guardianField.hidden = !minor;
  });
  const boxes = CONSENTS.map((c) => h("input", { type: "checkbox", value: c, checked: c === "COMMUNITY_ACTIVITY" }));
  const out = h("div", { id: "open-result" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "open" },
    field("region", region), field("name", name), field("id_number", idNumber), field("phone", phone),
    field("centre", centre), guardianField,
    h("fieldset", {}, h("legend", { text: t("consents") }),
      ...boxes.map((box) => h("label", { class: "check" }, box, t(`consent_${/** @type {HTMLInputElement} */ (box).value}`)))),
    h("button", { class: "primary", type: "submit", text: t("open_go") })));
  onSubmit(form, out, async () => {
    const value = (/** @type {HTMLElement} */ node) => /** @type {HTMLInputElement} */ (node).value.trim();
    // A guardian is named only for a child: the API refuses one named for an adult.
    const guardianNumber = minorNow() ? value(guardian) : "";
    const body = { region_code: value(region), name: value(name), id_number: value(idNumber), phone_number: value(phone),
      guardian_account_number: guardianNumber };
    const opened = await must(api.POST("/v1/accounts", { body: me.role === "community_staff" ? body : { ...body, centre_id: value(centre) } }));
    const number = opened.account.account_number;
    for (const box of boxes) {
      const input = /** @type {HTMLInputElement} */ (box);
      if (!input.checked) continue;
      const category = /** @type {Schemas["ConsentBody"]["category"]} */ (input.value);
      await must(api.POST("/v1/accounts/{account_number}/consents", {
        params: { path: { account_number: number } }, body: { category, grant: true, guardian_account_number: guardianNumber } }));
    }
    showNotice(out, `${t("opened")}: ${number}${guardianNumber ? ` · ${t("guardian")}: ${guardianNumber}` : ""}`);
    await showResident(resident, number);
  });
  return h("section", { class: "panel" }, h("details", {}, h("summary", { text: t("open_title") }), form, out));
}

/**
 * Whether an 18-character ID number is a child's under 14 today, counted in China Standard Time calendar days as the
 * identity service counts them (ADR 0206): someone born on 29 February turns a year older on 1 March.
 * @param {string} idNumber
 */
export function isMinor(idNumber) {
  const birth = /^[0-9]{6}([0-9]{4})([0-9]{2})([0-9]{2})[0-9]{3}[0-9Xx]$/.exec(idNumber);
  if (!birth) return false;
  const [year, month, day] = birth.slice(1).map(Number);
  const today = chinaDay().split("-").map(Number);
  const fourteenth = [year + 14, month, day];
  for (let i = 0; i < 3; i += 1) if (today[i] !== fourteenth[i]) return today[i] < fourteenth[i];
  return false;
}

/** The chosen resident: balance in large type, then what the counter can do for them. */
async function showResident(/** @type {HTMLElement} */ resident, /** @type {string} */ number) {
  const path = { account_number: number };
  const [account, balance, expiring] = await Promise.all([
    must(api.GET("/v1/accounts/{account_number}", { params: { path } })),
    must(api.GET("/v1/accounts/{account_number}/balance", { params: { path } })),
    must(api.GET("/v1/accounts/{account_number}/expiring-points", { params: { path, query: { within_days: EXPIRING_DAYS } } })),
  ]);
  const a = account.account;
  const b = balance.balance;
  resident.replaceChildren(
    h("section", { class: "panel", id: "resident-summary" },
      h("h2", { text: `${t("resident")} ${a.masked_name} · ${a.account_number} · ${a.masked_phone_number}` }),
      a.minor ? h("p", { id: "resident-minor", text: `${t("minor")} · ${t("guardian")}: ${a.guardian_account_number || "-"}` }) : null,
      h("div", {}, t("balance")),
      h("div", { class: "balance", id: "balance" }, String(b.available_points)),
      h("div", { class: "expiring", id: "expiring" }, `${t("expiring")}: ${b.expiring_within_30_days_points} ${t("points")}`),
      expiring.expiring.length
        ? h("ul", { class: "expiring-days", id: "expiring-days", "aria-label": t("expiring_days") },
          ...expiring.expiring.map((e) => h("li", { text: `${e.expires_on}: ${e.amount_points} ${t("points")}` })))
        : null),
    await recordPanel(resident, number, a.region_code),
    await offersPanel(resident, number),
    await redeemPanel(resident, number, a.region_code),
    await vouchersPanel(resident, number),
    summaryPanel(a),
  );
  /** @type {HTMLElement | null} */ (resident.querySelector("#record-behaviour"))?.focus();
}

async function recordPanel(/** @type {HTMLElement} */ resident, /** @type {string} */ number, /** @type {string} */ region) {
  const catalog = (await must(api.GET("/v1/regions/{region_code}/behaviours", { params: { path: { region_code: region }, query: { page_size: 1000 } } }))).behaviours;
  const offered = new Set(catalog.map((b) => b.code));
  const behaviour = h("select", { id: "record-behaviour" },
    ...BEHAVIOURS.filter((b) => offered.has(b)).map((b) => h("option", { value: b, text: t(`b_${b}`) })));
  const quantity = h("input", { id: "record-quantity", type: "number", min: 1, max: 31, value: 1, required: true });
  const quantityLabel = h("span", { text: t("quantity") });
  const evidence = h("input", { id: "record-evidence", maxlength: 200, size: 16 });
  // The unit follows the behaviour: times or days, or kilograms weighed for recycling.
  behaviour.addEventListener("change", () => {
    quantityLabel.textContent = t(/** @type {HTMLSelectElement} */ (behaviour).value === WEIGHED ? "quantity_kg" : "quantity");
  });
  const out = h("div", { id: "record-result" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "record" },
    field("behaviour", behaviour), h("label", {}, quantityLabel, quantity), field("evidence", evidence),
    h("button", { class: "primary", type: "submit", text: t("record_go") })));
  onSubmit(form, out, async () => {
    const chosen = /** @type {Schemas["CommunityEventBody"]["behaviour"]} */ (/** @type {HTMLSelectElement} */ (behaviour).value);
    const result = await must(api.POST("/v1/accounts/{account_number}/community-events", {
      params: { path: { account_number: number } },
      body: { behaviour: chosen, quantity: Number(/** @type {HTMLInputElement} */ (quantity).value),
        evidence_ref: /** @type {HTMLInputElement} */ (evidence).value.trim() } }));
    await showResident(resident, number);
    // Points after the daily cap; a unit that earned nothing says why (the cap reached, the activity already claimed).
    const why = [...new Set(result.results.filter((r) => r.reason).map((r) => r.reason))];
    showNotice(/** @type {HTMLElement} */ (resident.querySelector("#record-result")),
      `${t("recorded")}: ${result.points} (${result.result.event_id})${why.length ? ` · ${why.join(", ")}` : ""}`);
  });
  return h("section", { class: "panel" }, h("h2", { text: t("record_title") }), form, out);
}

/** The campaign offers the resident gets, with why; staff accept one for a resident who has no smartphone. */
async function offersPanel(/** @type {HTMLElement} */ resident, /** @type {string} */ number) {
  const path = { account_number: number };
  const offers = (await must(api.GET("/v1/accounts/{account_number}/offers", { params: { path } }))).offers;
  const out = h("div", { id: "offer-result" });
  const accept = async (/** @type {string} */ offerId) => {
    try {
      await must(api.POST("/v1/accounts/{account_number}/offers/{offer_id}/accept", { params: { path: { ...path, offer_id: offerId } } }));
      await showResident(resident, number);
      showNotice(/** @type {HTMLElement} */ (resident.querySelector("#offer-result")), t("accepted"));
    } catch (error) {
      showProblem(out, error);
    }
  };
  const rows = offers.length ? table([
    ["offer", (o) => `${o.campaign_name}: ${o.headline}`],
    ["why", (o) => (o.explanation ? o.explanation.summary : "")],
    ["state", (o) => t(`offer_${o.state}`)],
    ["accept_go", (o) => (o.state === "OFFER_STATE_OFFERED"
      ? h("button", { type: "button", class: "accept-offer", "data-campaign": o.campaign_id, text: t("accept_go"), onclick: () => accept(o.offer_id) })
      : "")],
  ], offers) : h("p", { text: t("no_offers") });
  return h("section", { class: "panel", id: "offers" }, h("h2", { text: t("offers_title") }), rows, out);
}

async function redeemPanel(/** @type {HTMLElement} */ resident, /** @type {string} */ number, /** @type {string} */ region) {
  const rewards = (await must(api.GET("/v1/regions/{region_code}/rewards", { params: { path: { region_code: region } } }))).rewards;
  const reward = h("select", { id: "redeem-reward" }, ...rewards.map((r) =>
    h("option", { value: r.reward_id, "data-price": r.price_points, text: `${lang === "zh" ? r.name_zh : r.name_en} · ${r.price_points} ${t("points")}` })));
  const out = h("div", { id: "redeem-result" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "redeem" },
    field("reward", reward), h("button", { class: "primary", type: "submit", text: t("redeem_go") })));
  onSubmit(form, out, async () => {
    const chosen = rewards.find((r) => r.reward_id === /** @type {HTMLSelectElement} */ (reward).value);
    const done = await must(api.POST("/v1/accounts/{account_number}/redemptions", {
      params: { path: { account_number: number } }, body: { reward_id: /** @type {HTMLSelectElement} */ (reward).value, quantity: 1 } }));
    await showResident(resident, number);
    const where = /** @type {HTMLElement} */ (resident.querySelector("#redeem-result"));
    const voucher = done.redemption.vouchers[0];
    showNotice(where, `${t("redeemed")}: ${done.redemption.state}`);
    if (voucher) {
      const print = h("button", { type: "button", id: "print-voucher", text: t("print_voucher"),
        onclick: () => printOut(voucherSlip(voucher, chosen)) });
      where.append(print);
      print.focus();
    }
  });
  return h("section", { class: "panel" }, h("h2", { text: t("redeem_title") }), form, out);
}

/** @param {Schemas["Voucher"]} voucher @param {Schemas["Reward"] | undefined} reward */
function voucherSlip(voucher, reward) {
  return h("div", { class: "slip", id: "voucher-slip" },
    h("h1", { text: t("voucher") }),
    h("p", { text: reward ? `${reward.name_zh} / ${reward.name_en}` : voucher.reward_id }),
    h("p", { text: `${t("code")}: ${voucher.code}` }),
    h("p", { text: `${t("account")}: ${voucher.account_number}` }),
    h("p", { text: `${t("expires")}: ${voucher.expires_at ?? ""}` }),
    h("p", { text: voucher.terms }));
}

async function vouchersPanel(/** @type {HTMLElement} */ resident, /** @type {string} */ number) {
  const path = { account_number: number };
  const vouchers = (await must(api.GET("/v1/accounts/{account_number}/vouchers", { params: { path } }))).vouchers;
  const out = h("div", { id: "voucher-result" });
  const use = async (/** @type {string} */ code) => {
    try {
      await must(api.POST("/v1/accounts/{account_number}/vouchers/{code}/use", { params: { path: { account_number: number, code } } }));
      await showResident(resident, number);
      showNotice(/** @type {HTMLElement} */ (resident.querySelector("#voucher-result")), `${t("used")}: ${code}`);
    } catch (error) {
      showProblem(out, error);
    }
  };
  const rows = table([
    ["code", (v) => v.code],
    ["reward", (v) => v.reward_id],
    ["state", (v) => v.state],
    ["expires", (v) => v.expires_at ?? ""],
    ["use_go", (v) => h("button", { type: "button", class: "use-voucher", "data-code": v.code, text: t("use_go"), onclick: () => use(v.code) })],
    ["print", (v) => h("button", { type: "button", text: t("print"), onclick: () => printOut(voucherSlip(v, undefined)) })],
  ], vouchers);
  return h("section", { class: "panel", id: "vouchers" }, h("h2", { text: t("vouchers_title") }), rows, out);
}

/** @param {Schemas["Account"]} account */
function summaryPanel(account) {
  const month = h("input", { id: "summary-month", type: "month", value: isoDay().slice(0, 7), required: true });
  const out = h("div", { id: "summary-result" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "summary" },
    field("month", month), h("button", { class: "primary", type: "submit", text: t("summary_go") })));
  onSubmit(form, out, async () => {
    const wanted = /** @type {HTMLInputElement} */ (month).value;
    const statement = await must(api.GET("/v1/accounts/{account_number}/statement", {
      params: { path: { account_number: account.account_number }, query: { page_size: 1000 } } }));
    const entries = statement.entries.filter((e) => (e.posted_at ?? "").startsWith(wanted));
    const earned = entries.filter((e) => e.amount_points > 0).reduce((sum, e) => sum + e.amount_points, 0);
    const spent = entries.filter((e) => e.amount_points < 0).reduce((sum, e) => sum - e.amount_points, 0);
    const co2e = entries.reduce((sum, e) => sum + e.co2e_grams, 0);
    printOut(h("div", { id: "summary-slip" },
      h("h1", { text: `${t("summary_title")} ${wanted}` }),
      h("p", { text: `${t("resident")}: ${account.masked_name} · ${account.account_number}` }),
      h("p", { text: `+${earned} / -${spent} ${t("points")} · ${t("co2e")}: ${co2e}` }),
      table([["when", (e) => e.posted_at ?? ""], ["kind", (e) => e.code], ["amount", (e) => e.amount_points, true]], entries)));
    showNotice(out, t("done"));
  });
  return h("section", { class: "panel" }, h("h2", { text: t("summary_title") }), form, out);
}
