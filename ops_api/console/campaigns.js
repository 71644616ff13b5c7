// Campaigns (issue 23): every visible region's campaigns with budget, spend and what is left, by region and
// nationally, in a table and a chart; operators and admins create a regional or a national campaign. The budget is
// held in the campaign's ledger account, so spend can never pass it: the page only shows what incentives reports.
import { api, must, session } from "./api.js";
import { lang, t } from "./i18n.js";
import { chart, visibleRegions } from "./ops.js";
import { chinaDay, field, h, onSubmit, showNotice, table } from "./ui.js";

/** @typedef {import("./openapi").components["schemas"]} Schemas */
/** @typedef {Schemas["Campaign"] & { region_code: string }} RegionCampaign */

const TARGETS = ["EVERYONE", "LAPSED", "NEVER_TRIED", "WEEKDAY_REGULAR"];
const NATIONAL = "national";
const val = (/** @type {HTMLElement} */ node) => /** @type {HTMLInputElement} */ (node).value.trim();

/** @param {HTMLElement} main */
export async function campaignsPage(main) {
  const regions = await visibleRegions();
  const out = h("div", { id: "campaigns" });
  const show = () => drawCampaigns(out, regions);
  const role = session.me ? session.me.role : "";
  const create = role === "operator" || role === "admin" ? await createPanel(regions, show) : null;
  main.replaceChildren(h("h1", { text: t("nav_campaigns") }), create, out);
  await show();
}

/** The campaigns of every visible region, each with its region. @param {Schemas["Region"][]} regions */
async function regionCampaigns(regions) {
  const lists = await Promise.all(regions.map((r) =>
    must(api.GET("/v1/regions/{region_code}/campaigns", { params: { path: { region_code: r.region_code } } }))));
  return lists.flatMap((list, i) =>
    list.campaigns.map((c) => /** @type {RegionCampaign} */ ({ ...c, region_code: regions[i].region_code })));
}

/** Budget, spend and what is left of a set of campaigns. @param {RegionCampaign[]} campaigns */
function totals(campaigns) {
  const budget = campaigns.reduce((sum, c) => sum + c.budget_points, 0);
  const paid = campaigns.reduce((sum, c) => sum + c.paid_points, 0);
  const bonuses = campaigns.reduce((sum, c) => sum + c.bonuses_paid, 0);
  return { budget, paid, bonuses, remaining: budget - paid };
}

async function drawCampaigns(/** @type {HTMLElement} */ out, /** @type {Schemas["Region"][]} */ regions) {
  const campaigns = await regionCampaigns(regions);
  const national = totals(campaigns);
  const card = (/** @type {string} */ key, /** @type {number} */ value, /** @type {string} */ id) =>
    h("div", { class: "card", id }, h("div", { text: t(key) }), h("div", { class: "value", text: value.toLocaleString() }));
  const byRegion = regions.map((r) => ({
    region: r, ...totals(campaigns.filter((c) => c.region_code === r.region_code)),
  }));
  const chartRegion = h("div", { class: "chart", id: "chart-campaign-regions", role: "img", "aria-label": t("by_region") });
  const chartCampaign = h("div", { class: "chart", id: "chart-campaign-spend", role: "img", "aria-label": t("campaign_spend") });
  const regionName = (/** @type {Schemas["Region"]} */ r) => `${r.region_code} ${lang === "zh" ? r.name_zh : r.name_en}`;
  out.replaceChildren(
    h("h2", { text: t("national") }),
    h("div", { class: "cards", id: "campaign-cards" },
      card("budget", national.budget, "campaign-budget"), card("spend", national.paid, "campaign-spend"),
      card("remaining", national.remaining, "campaign-remaining"), card("bonuses", national.bonuses, "campaign-bonuses")),
    h("h2", { text: t("by_region") }), chartRegion,
    table([["region", (row) => regionName(row.region)], ["budget", (row) => row.budget, true],
      ["spend", (row) => row.paid, true], ["remaining", (row) => row.remaining, true],
      ["bonuses", (row) => row.bonuses, true]], byRegion),
    h("h2", { text: t("campaign_spend") }), chartCampaign,
    h("div", { id: "campaign-list" }, campaigns.length ? table([
      ["region", (c) => c.region_code], ["name", (c) => c.name],
      ["scope", (c) => t(c.scope === "CAMPAIGN_SCOPE_NATIONAL" ? "scope_national" : "scope_regional")],
      ["behaviour", (c) => c.behaviour],
      ["bonus", (c) => (c.bonus_points ? `+${c.bonus_points}` : `+${c.bonus_percent}%`)],
      ["whom", (c) => t(`target_${c.target ? c.target.kind.replace("TARGET_KIND_", "") : ""}`)],
      ["window", (c) => `${(c.starts_at ?? "").slice(0, 10)} – ${(c.ends_at ?? "").slice(0, 10)}`],
      ["budget", (c) => c.budget_points, true], ["spend", (c) => c.paid_points, true],
      ["remaining", (c) => c.budget_points - c.paid_points, true], ["bonuses", (c) => c.bonuses_paid, true],
      ["state", (c) => t(c.exhausted ? "exhausted" : c.funded ? "funded" : "unfunded")],
    ], campaigns) : h("p", { text: t("no_data") })),
  );
  chart(chartRegion, {
    tooltip: { trigger: "axis" }, legend: {},
    xAxis: { type: "category", data: byRegion.map((row) => regionName(row.region)) }, yAxis: { type: "value", name: t("points") },
    series: [{ name: t("spend"), type: "bar", stack: "budget", data: byRegion.map((row) => row.paid) },
      { name: t("remaining"), type: "bar", stack: "budget", data: byRegion.map((row) => row.remaining) }],
  });
  chart(chartCampaign, {
    tooltip: { trigger: "axis" }, legend: {},
    xAxis: { type: "category", data: campaigns.map((c) => `${c.region_code} ${c.name}`) }, yAxis: { type: "value", name: t("points") },
    series: [{ name: t("spend"), type: "bar", stack: "budget", data: campaigns.map((c) => c.paid_points) },
      { name: t("remaining"), type: "bar", stack: "budget", data: campaigns.map((c) => c.budget_points - c.paid_points) }],
  });
}

/** The form that creates a campaign in one region or, nationally, in every region with its own budget. */
async function createPanel(/** @type {Schemas["Region"][]} */ regions, /** @type {() => Promise<void>} */ show) {
  const behaviours = regions.length
    ? (await must(api.GET("/v1/regions/{region_code}/behaviours", { params: { path: { region_code: regions[0].region_code }, query: { page_size: 1000 } } }))).behaviours
    : [];
  const scope = h("select", { id: "campaign-scope" },
    h("option", { value: NATIONAL, text: t("scope_national_all") }),
    ...regions.map((r) => h("option", { value: r.region_code, text: `${t("scope_regional")} ${r.region_code} ${lang === "zh" ? r.name_zh : r.name_en}` })));
  const name = h("input", { id: "campaign-name", required: true, maxlength: 100 });
  const behaviour = h("select", { id: "campaign-behaviour" }, ...behaviours.map((b) =>
    h("option", { value: b.code, text: `${lang === "zh" ? b.name_zh : b.name_en} (${b.code})` })));
  const bonus = h("input", { id: "campaign-bonus", type: "number", min: 1, max: 1000000, value: 50, required: true });
  const target = h("select", { id: "campaign-target" }, ...TARGETS.map((k) => h("option", { value: k, text: t(`target_${k}`) })));
  const days = h("input", { id: "campaign-days", type: "number", min: 0, max: 365, value: 7 });
  const weekdays = h("input", { id: "campaign-weekdays", type: "number", min: 0, max: 20, value: 3 });
  // Days in China time: the window runs from the start of the first day to the end of the last there.
  const from = h("input", { id: "campaign-from", type: "date", value: chinaDay(0), required: true });
  const to = h("input", { id: "campaign-to", type: "date", value: chinaDay(30), required: true });
  const budget = h("input", { id: "campaign-budget-points", type: "number", min: 1, max: 1000000000, value: 10000, required: true });
  const out = h("div", { id: "campaign-result" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "campaign-create" },
    field("scope", scope), field("name", name), field("behaviour", behaviour), field("bonus_points", bonus),
    field("whom", target), field("target_days", days), field("target_weekdays", weekdays),
    field("from_day", from), field("to_day", to), field("budget_per_region", budget),
    h("button", { class: "primary", type: "submit", text: t("campaign_go") })));
  onSubmit(form, out, async () => {
    const body = {
      name: val(name), behaviour: val(behaviour), bonus_points: Number(val(bonus)),
      target: /** @type {Schemas["CampaignBody"]["target"]} */ (`TARGET_KIND_${val(target)}`),
      target_days: val(target) === "LAPSED" ? Number(val(days)) : 0,
      target_weekdays: val(target) === "WEEKDAY_REGULAR" ? Number(val(weekdays)) : 0,
      // The window in China time: from the start of the first day to the end of the last (ends_at is exclusive).
      starts_at: `${val(from)}T00:00:00+08:00`, ends_at: `${val(to)}T23:59:59+08:00`,
      budget_points: Number(val(budget)),
    };
    const where = val(scope);
    if (where === NATIONAL) {
      const made = await must(api.POST("/v1/campaigns", { body }));
      await show();
      showNotice(out, `${t("created")}: ${made.region_codes.join(", ")}`);
    } else {
      const made = await must(api.POST("/v1/regions/{region_code}/campaigns", { params: { path: { region_code: where } }, body }));
      await show();
      showNotice(out, `${t("created")}: ${made.campaign.campaign_id}`);
    }
  });
  return h("section", { class: "panel" }, h("details", {}, h("summary", { text: t("campaign_create") }), form, out));
}
