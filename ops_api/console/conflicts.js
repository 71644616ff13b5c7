// Claim conflicts (issue 16): per day and (holder, claimant) partner pair, how many reports of an activity another
// partner had already claimed were refused. A pair that keeps appearing is a fraud signal (or two partners sending
// the same activity by design), so the page shows the days as a chart and the pairs in a table.
import { api, must } from "./api.js";
import { t } from "./i18n.js";
import { chart } from "./ops.js";
import { chinaDay, field, h, onSubmit, table } from "./ui.js";

/** @typedef {import("./openapi").components["schemas"]} Schemas */

const val = (/** @type {HTMLElement} */ node) => /** @type {HTMLInputElement} */ (node).value.trim();

/** "330000/metro-app → 110000/wallet-app" @param {Schemas["ClaimConflictCount"]} c */
const pairOf = (c) => `${c.holder_region}/${c.holder_partner} → ${c.claimant_region}/${c.claimant_partner}`;

/** @param {HTMLElement} main */
export async function conflictsPage(main) {
  // The API answers at most 62 days per call; a month is what an analyst looks at first. Days are China time, as the
  // claims count them.
  const from = h("input", { id: "conflicts-from", type: "date", value: chinaDay(-29), required: true });
  const to = h("input", { id: "conflicts-to", type: "date", value: chinaDay(0), required: true });
  const out = h("div", { id: "conflicts" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "conflicts-range" },
    field("from_day", from), field("to_day", to), h("button", { class: "primary", type: "submit", text: t("show") })));
  const show = () => drawConflicts(out, val(from), val(to));
  onSubmit(form, out, show);
  main.replaceChildren(h("h1", { text: t("nav_conflicts") }), h("p", { text: t("conflicts_intro") }), form, out);
  await show();
}

async function drawConflicts(/** @type {HTMLElement} */ out, /** @type {string} */ from, /** @type {string} */ to) {
  const counts = (await must(api.GET("/v1/claim-conflicts", { params: { query: { from_day: from, to_day: to } } }))).counts;
  const days = [...new Set(counts.map((c) => c.day))].sort();
  const pairs = [...new Set(counts.map(pairOf))];
  const byPair = pairs.map((pair) => ({
    pair, conflicts: counts.filter((c) => pairOf(c) === pair).reduce((sum, c) => sum + c.conflicts, 0),
    days: counts.filter((c) => pairOf(c) === pair).length,
  })).sort((a, b) => b.conflicts - a.conflicts);
  const byDay = h("div", { class: "chart", id: "chart-conflicts", role: "img", "aria-label": t("conflicts_by_day") });
  out.replaceChildren(
    h("h2", { text: t("conflicts_by_day") }), byDay,
    h("h2", { text: t("conflicts_by_pair") }),
    table([["pair", (p) => p.pair], ["conflicts", (p) => p.conflicts, true], ["days", (p) => p.days, true]], byPair),
    h("h2", { text: t("conflicts_detail") }),
    table([["day", (c) => c.day], ["holder", (c) => `${c.holder_region}/${c.holder_partner}`],
      ["claimant", (c) => `${c.claimant_region}/${c.claimant_partner}`], ["conflicts", (c) => c.conflicts, true]], counts),
  );
  chart(byDay, {
    tooltip: { trigger: "axis" }, legend: {},
    xAxis: { type: "category", data: days }, yAxis: { type: "value", name: t("conflicts") },
    series: pairs.map((pair) => ({ name: pair, type: "bar", stack: "pairs",
      data: days.map((day) => counts.filter((c) => c.day === day && pairOf(c) === pair).reduce((s, c) => s + c.conflicts, 0)) })),
  });
}
