// Operations pages: the dashboard (Apache ECharts, served from this process), national figures, settlement, score explanation,
// partners and keys, catalog and rule versions, four-eyes adjustments, the audit log.
import { api, must, session } from "./api.js";
import { lang, t } from "./i18n.js";
import { field, h, isoDay, onSubmit, showNotice, showProblem, table } from "./ui.js";
import * as echarts from "./vendor/echarts.esm.min.js";

/** @typedef {import("./openapi").components["schemas"]} Schemas */

/** Regions the staff member may see (community staff: their own). */
export async function visibleRegions() {
  const regions = (await must(api.GET("/v1/regions"))).regions;
  const mine = session.me && session.me.region_code;
  return mine ? regions.filter((r) => r.region_code === mine) : regions;
}

function regionSelect(/** @type {Schemas["Region"][]} */ regions, /** @type {string} */ id) {
  return h("select", { id }, ...regions.map((r) =>
    h("option", { value: r.region_code, text: `${r.region_code} ${lang === "zh" ? r.name_zh : r.name_en}` })));
}

const val = (/** @type {HTMLElement} */ node) => /** @type {HTMLInputElement} */ (node).value.trim();

/** @param {HTMLElement} main */
export async function dashboardPage(main) {
  const from = h("input", { id: "dash-from", type: "date", value: isoDay(-29) });
  const to = h("input", { id: "dash-to", type: "date", value: isoDay(1) });
  const out = h("div", { id: "dashboard" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline" },
    field("from_day", from), field("to_day", to), h("button", { class: "primary", type: "submit", text: t("show") })));
  onSubmit(form, out, () => drawDashboard(out, val(from), val(to)));
  main.replaceChildren(h("h1", { text: t("nav_dashboard") }), form, out);
  await drawDashboard(out, val(from), val(to));
}

async function drawDashboard(/** @type {HTMLElement} */ out, /** @type {string} */ from, /** @type {string} */ to) {
  const d = await must(api.GET("/v1/dashboard", { params: { query: { from_day: from, to_day: to } } }));
  const n = d.national;
  const card = (/** @type {string} */ key, /** @type {number} */ value) =>
    h("div", { class: "card" }, h("div", { text: t(key) }), h("div", { class: "value", text: value.toLocaleString() }));
  const charts = ["chart-day", "chart-behaviour", "chart-region"].map((id) => h("div", { class: "chart", id, role: "img" }));
  out.replaceChildren(
    h("h2", { text: t("national") }),
    h("div", { class: "cards", id: "national" }, card("issued", n.issued_points), card("outstanding", n.outstanding_points),
      card("redeemed_pts", n.redeemed_points), card("expired", n.expired_points), card("donated", n.donated_points),
      card("events", n.events), card("co2e", n.co2e_grams)),
    h("h2", { text: t("by_day") }), charts[0],
    h("h2", { text: t("by_behaviour") }), charts[1],
    h("h2", { text: t("by_region") }), charts[2],
    table([["region", (r) => `${r.region_code} ${lang === "zh" ? r.name_zh : r.name_en}`],
      ["issued", (r) => r.issued_points, true], ["redeemed_pts", (r) => r.redeemed_points, true],
      ["expired", (r) => r.expired_points, true], ["donated", (r) => r.donated_points, true],
      ["co2e", (r) => r.co2e_grams, true]], d.by_region),
  );
  const points = t("points");
  const co2e = t("co2e");
  chart(charts[0], {
    tooltip: { trigger: "axis" }, legend: {}, xAxis: { type: "category", data: d.by_day.map((r) => r.day) },
    yAxis: [{ type: "value", name: points }, { type: "value", name: co2e }],
    series: [{ name: points, type: "bar", data: d.by_day.map((r) => r.points) },
      { name: co2e, type: "line", yAxisIndex: 1, data: d.by_day.map((r) => r.co2e_grams) }],
  });
  chart(charts[1], {
    tooltip: {}, legend: {}, xAxis: { type: "category", data: d.by_behaviour.map((r) => r.behaviour) },
    yAxis: [{ type: "value", name: points }, { type: "value", name: co2e }],
    series: [{ name: points, type: "bar", data: d.by_behaviour.map((r) => r.points) },
      { name: co2e, type: "bar", yAxisIndex: 1, data: d.by_behaviour.map((r) => r.co2e_grams) }],
  });
  const names = d.by_region.map((r) => (lang === "zh" ? r.name_zh : r.name_en));
  chart(charts[2], {
    tooltip: { trigger: "axis" }, legend: {}, xAxis: { type: "category", data: names }, yAxis: { type: "value" },
    series: [["issued", "issued_points"], ["redeemed_pts", "redeemed_points"], ["expired", "expired_points"],
      ["donated", "donated_points"]].map(([key, figure]) =>
      ({ name: t(key), type: "bar", data: d.by_region.map((r) => /** @type {any} */ (r)[figure]) })),
  });
}

/** @param {HTMLElement} main */
export async function nationalPage(main) {
  const month = h("input", { id: "national-month", type: "month", value: isoDay(0).slice(0, 7), required: true });
  const out = h("div", { id: "national-figures" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline" },
    field("month", month), h("button", { class: "primary", type: "submit", text: t("show") })));
  onSubmit(form, out, () => drawNational(out, val(month)));
  main.replaceChildren(h("h1", { text: t("nav_national") }), form, out);
  await drawNational(out, val(month));
}

async function drawNational(/** @type {HTMLElement} */ out, /** @type {string} */ month) {
  const [year, number] = month.split("-").map(Number);
  const f = await must(api.GET("/v1/national-figures", { params: { query: { year, month: number } } }));
  const n = f.national;
  const p = n.points;
  const card = (/** @type {string} */ key, /** @type {number} */ value) =>
    h("div", { class: "card" }, h("div", { text: t(key) }), h("div", { class: "value", text: value.toLocaleString() }));
  const byDay = h("div", { class: "chart", id: "chart-national-day", role: "img" });
  const byBehaviour = h("div", { class: "chart", id: "chart-national-behaviour", role: "img" });
  const ahead = h("div", { class: "chart", id: "chart-expiring-ahead", role: "img" });
  out.replaceChildren(
    h("p", { id: "national-state", text: t(p && p.closed ? "period_closed" : "period_open") }),
    h("div", { class: "cards", id: "national-cards" }, card("accounts_open", n.accounts_open_at_end),
      card("accounts_opened", n.accounts_opened), card("issued", p ? p.issued_points : 0),
      card("redeemed_pts", p ? p.redeemed_points : 0), card("expired", p ? p.expired_points : 0),
      card("donated", p ? p.donated_points : 0), card("transferred_in", p ? p.transferred_in_points : 0),
      card("co2e", p ? p.co2e_grams : 0), card("trees", n.trees_planted), card("books", n.books_donated),
      card("forest_mu", n.forest_area_milli_mu / 1000)),
    h("h2", { text: t("by_day_kinds") }), byDay,
    h("h2", { text: t("by_behaviour") }), byBehaviour,
    h("h2", { text: t("expiring_ahead") }), ahead,
    h("h2", { text: t("by_region") }),
    table([["region", (r) => r.region_code], ["accounts_open", (r) => r.accounts_open_at_end, true],
      ["issued", (r) => r.points ? r.points.issued_points : 0, true],
      ["redeemed_pts", (r) => r.points ? r.points.redeemed_points : 0, true],
      ["expired", (r) => r.points ? r.points.expired_points : 0, true],
      ["donated", (r) => r.points ? r.points.donated_points : 0, true],
      ["co2e", (r) => r.points ? r.points.co2e_grams : 0, true], ["trees", (r) => r.trees_planted, true]], f.regions),
  );
  const days = p ? p.by_day : [];
  chart(byDay, {
    tooltip: { trigger: "axis" }, legend: {},
    xAxis: { type: "category", data: days.map((d) => d.day.slice(5)) }, yAxis: { type: "value" },
    series: [["issued", "issued_points"], ["redeemed_pts", "redeemed_points"], ["expired", "expired_points"],
      ["donated", "donated_points"]].map(([key, figure]) =>
      ({ name: t(key), type: "bar", data: days.map((d) => /** @type {any} */ (d)[figure]) })),
  });
  // Points that will expire in each coming month unless spent, stacked by region: 25 months, this one included, so
  // the points earned today (they expire on this day two years on) are in the last bar.
  const expiring = await must(api.GET("/v1/expiring-ahead", { params: { query: { months_ahead: 25 } } }));
  chart(ahead, {
    tooltip: { trigger: "axis" }, legend: {},
    xAxis: { type: "category", data: expiring.national.map((m) => `${m.year}-${String(m.month).padStart(2, "0")}`) },
    yAxis: { type: "value", name: t("points") },
    series: expiring.regions.map((r) => ({ name: r.region_code, type: "bar", stack: "regions",
      data: r.months.map((m) => m.amount_points) })),
  });
  const behaviours = p ? p.by_behaviour : [];
  chart(byBehaviour, {
    tooltip: {}, legend: {}, xAxis: { type: "category", data: behaviours.map((b) => b.behaviour) },
    yAxis: [{ type: "value", name: t("points") }, { type: "value", name: t("co2e") }],
    series: [{ name: t("points"), type: "bar", data: behaviours.map((b) => b.points) },
      { name: t("co2e"), type: "bar", yAxisIndex: 1, data: behaviours.map((b) => b.co2e_grams) }],
  });
}

/** Draws one chart; the element records how many data points it drew (a page with no data says so). */
export function chart(/** @type {HTMLElement} */ where, /** @type {any} */ option) {
  const count = option.series.reduce((/** @type {number} */ sum, /** @type {any} */ s) => sum + s.data.filter(Boolean).length, 0);
  where.dataset.points = String(count);
  if (!count) {
    where.replaceChildren(h("p", { text: t("no_data") }));
    return;
  }
  // Pages render off-screen first (app.js): ECharts needs the element's size, so it draws once the element has one.
  const observer = new ResizeObserver((entries) => {
    if (!entries.some((entry) => entry.contentRect.width > 0)) return;
    observer.disconnect();
    echarts.init(where, undefined, { renderer: "canvas" }).setOption(option);
  });
  observer.observe(where);
}

/** @param {HTMLElement} main */
export async function settlementPage(main) {
  const from = h("input", { id: "settle-from", type: "date", value: isoDay(-30) });
  const to = h("input", { id: "settle-to", type: "date", value: isoDay(1) });
  const out = h("div", { id: "settlement" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline" },
    field("from_day", from), field("to_day", to), h("button", { class: "primary", type: "submit", text: t("show") })));
  const show = async () => {
    const query = { period_start: `${val(from)}T00:00:00+08:00`, period_end: `${val(to)}T00:00:00+08:00` };
    const report = await must(api.GET("/v1/settlement-report", { params: { query } }));
    const columns = /** @type {Array<[string, (row: any) => any, boolean?]>} */ ([["debtor", (p) => p.debtor_region],
      ["creditor", (p) => p.creditor_region], ["amount", (p) => p.amount_points, true]]);
    out.replaceChildren(h("h2", { text: t("settlement_gross") }), table(columns, report.gross),
      h("h2", { text: t("settlement_net") }), table(columns, report.net));
  };
  onSubmit(form, out, show);
  main.replaceChildren(h("h1", { text: t("nav_settlement") }), form, out);
  await show();
}

/** @param {HTMLElement} main */
export async function explainPage(main) {
  const regions = await visibleRegions();
  const region = regionSelect(regions, "explain-region");
  const partner = h("input", { id: "explain-partner", value: "community-centre", required: true });
  const event = h("input", { id: "explain-event", required: true, size: 40 });
  const out = h("div", { id: "explanation" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline" }, field("region", region),
    field("partner", partner), field("event_id", event), h("button", { class: "primary", type: "submit", text: t("explain_go") })));
  onSubmit(form, out, async () => {
    const e = await must(api.GET("/v1/regions/{region_code}/score-explanation", {
      params: { path: { region_code: val(region) }, query: { partner_id: val(partner), event_id: val(event) } } }));
    out.replaceChildren(table([["field", (row) => row[0]], ["value", (row) => row[1]]],
      Object.entries({ ...e, result: e.result ? `${e.result.outcome} ${e.result.points} ${e.result.reason}` : "" })));
  });
  main.replaceChildren(h("h1", { text: t("nav_explain") }), form, out);
}

/** @param {HTMLElement} main */
export async function partnersPage(main) {
  const regions = await visibleRegions();
  const region = regionSelect(regions, "partners-region");
  const out = h("div", { id: "partners" });
  // Only the latest listing is drawn: a listing asked for before a change may answer after the one asked for after
  // it, and would otherwise put the old list back on the page.
  let latest = 0;
  const show = async () => {
    const mine = ++latest;
    const path = { region_code: val(region) };
    const partners = (await must(api.GET("/v1/regions/{region_code}/partners", { params: { path } }))).partners;
    if (mine !== latest) return;
    const rotate = async (/** @type {string} */ id) => {
      const rotated = await must(api.POST("/v1/regions/{region_code}/partners/{partner_id}/rotate-secret",
        { params: { path: { ...path, partner_id: id } } }));
      showNotice(out, `${t("secret_once")}: ${rotated.secret}`);
    };
    out.replaceChildren(table([["partner", (p) => p.partner_id], ["name", (p) => p.name], ["kind", (p) => p.kind],
      ["behaviour", (p) => p.allowed_behaviours.join(", ")], ["active_key", (p) => p.active_key_id],
      ["state", (p) => t(p.active ? "partner_active" : "partner_inactive")],
      ["rotate", (p) => (session.me && session.me.role === "admin"
        ? h("button", { type: "button", text: t("rotate"), onclick: () => rotate(p.partner_id).catch((e) => showProblem(out, e)) })
        : "")]], partners));
  };
  const change = h("div", { id: "partner-change" });
  // The change form is drawn for one region; choosing another draws a new one. Only the latest is put on the page
  // (an older one could otherwise replace it and change a partner of the region no longer chosen), and data-ready
  // says when the form for the region shown is in place.
  let latestForm = 0;
  const refresh = async () => {
    const mine = ++latestForm;
    change.dataset.ready = "false";
    await show();
    if (session.me && session.me.role === "admin") {
      const form = h("div");
      await changeBehavioursForm(form, val(region), show);
      if (mine !== latestForm) return;
      change.replaceChildren(...Array.from(form.childNodes));
    }
    change.dataset.ready = "true";
  };
  region.addEventListener("change", () => { refresh(); });
  main.replaceChildren(h("h1", { text: t("nav_partners") }), field("region", region), out, change);
  await refresh();
}

/**
 * Admin: which behaviours a partner may report (the list replaced, with a reason; ingest keeps the change and the
 * API's audit log who made it). Checkboxes of the region's catalog, ticked as the partner has them now.
 */
async function changeBehavioursForm(/** @type {HTMLElement} */ where, /** @type {string} */ region, /** @type {() => Promise<void>} */ show) {
  const path = { region_code: region };
  const [partners, catalog] = await Promise.all([
    must(api.GET("/v1/regions/{region_code}/partners", { params: { path } })),
    must(api.GET("/v1/regions/{region_code}/behaviours", { params: { path, query: { page_size: 1000 } } })),
  ]);
  const partner = h("select", { id: "change-partner" }, ...partners.partners.map((p) => h("option", { value: p.partner_id, text: p.partner_id })));
  const boxes = catalog.behaviours.map((b) => h("input", { type: "checkbox", class: "change-behaviour", value: b.code }));
  const tick = () => {
    const chosen = partners.partners.find((p) => p.partner_id === val(partner));
    boxes.forEach((box) => { /** @type {HTMLInputElement} */ (box).checked = !!chosen && chosen.allowed_behaviours.includes(/** @type {HTMLInputElement} */ (box).value); });
  };
  partner.addEventListener("change", tick);
  const reason = h("input", { id: "change-reason", required: true, minlength: 3, maxlength: 500, size: 40 });
  const out = h("div", { id: "change-result" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "change-behaviours" }, field("partner", partner),
    h("fieldset", {}, h("legend", { text: t("behaviour") }),
      ...boxes.map((box, i) => h("label", { class: "check" }, box, `${lang === "zh" ? catalog.behaviours[i].name_zh : catalog.behaviours[i].name_en} (${catalog.behaviours[i].code})`))),
    field("reason", reason), h("button", { class: "primary", type: "submit", text: t("change_go") })));
  onSubmit(form, out, async () => {
    const allowed = boxes.filter((box) => /** @type {HTMLInputElement} */ (box).checked).map((box) => /** @type {HTMLInputElement} */ (box).value);
    const changed = await must(api.POST("/v1/regions/{region_code}/partners/{partner_id}/allowed-behaviours", {
      params: { path: { ...path, partner_id: val(partner) } }, body: { allowed_behaviours: allowed, reason: val(reason) } }));
    await show();
    showNotice(out, `${t("done")}: ${changed.partner.partner_id} · ${changed.previous_behaviours.join(", ")} → ${changed.partner.allowed_behaviours.join(", ")}`);
  });
  tick();
  where.replaceChildren(h("section", { class: "panel" }, h("h2", { text: t("change_title") }), form, out));
}

/** @param {HTMLElement} main */
export async function catalogPage(main) {
  const regions = await visibleRegions();
  const region = regionSelect(regions, "catalog-region");
  const out = h("div", { id: "catalog" });
  const show = async () => {
    const path = { region_code: val(region) };
    const [rewards, rules] = await Promise.all([
      must(api.GET("/v1/regions/{region_code}/rewards", { params: { path, query: { include_retired: true } } })),
      must(api.GET("/v1/regions/{region_code}/rules", { params: { path } })),
    ]);
    out.replaceChildren(
      h("h2", { text: t("rewards") }),
      table([["reward", (r) => r.reward_id], ["name", (r) => (lang === "zh" ? r.name_zh : r.name_en)],
        ["amount", (r) => r.price_points, true], ["state", (r) => r.state]], rewards.rewards),
      h("h2", { text: t("rules") }),
      table([["rule_version", (r) => r.rule_version_id], ["behaviour", (r) => r.behaviour],
        ["amount", (r) => r.points_per_unit, true], ["from_day", (r) => r.effective_from ?? ""]], rules.rules));
  };
  region.addEventListener("change", () => { show(); });
  main.replaceChildren(h("h1", { text: t("nav_catalog") }), field("region", region), out);
  await show();
}

/** @param {HTMLElement} main */
export async function adjustmentsPage(main) {
  const out = h("div", { id: "adjustments-result" });
  const list = h("div", { id: "adjustments" });
  const account = h("input", { id: "adjust-account", required: true, pattern: "[0-9]{16}" });
  const amount = h("input", { id: "adjust-amount", type: "number", required: true });
  const reason = h("input", { id: "adjust-reason", required: true, minlength: 3, size: 40 });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "adjust" }, field("account", account),
    field("amount", amount), field("reason", reason), h("button", { class: "primary", type: "submit", text: t("request_go") })));
  const decide = async (/** @type {string} */ id, /** @type {boolean} */ approve) => {
    const params = { path: { adjustment_id: id } };
    const body = { reason: "" };
    try {
      await must(approve ? api.POST("/v1/adjustments/{adjustment_id}/approve", { params, body })
        : api.POST("/v1/adjustments/{adjustment_id}/reject", { params, body }));
      await show();
      showNotice(out, t("done"));
    } catch (error) {
      showProblem(out, error);
    }
  };
  const show = async () => {
    const rows = (await must(api.GET("/v1/adjustments"))).adjustments;
    list.replaceChildren(table([["id", (a) => a.adjustment_id], ["account", (a) => a.account_number],
      ["amount", (a) => a.amount_points, true], ["reason", (a) => a.reason], ["who", (a) => a.requested_by],
      ["status", (a) => a.state],
      ["approve", (a) => (a.state === "PENDING" ? h("button", { type: "button", class: "approve", text: t("approve"), onclick: () => decide(a.adjustment_id, true) }) : "")],
      ["reject", (a) => (a.state === "PENDING" ? h("button", { type: "button", text: t("reject"), onclick: () => decide(a.adjustment_id, false) }) : "")]],
    rows));
  };
  onSubmit(form, out, async () => {
    await must(api.POST("/v1/adjustments", { body: { account_number: val(account), amount_points: Number(val(amount)), reason: val(reason) } }));
    await show();
    showNotice(out, t("done"));
  });
  main.replaceChildren(h("h1", { text: t("nav_adjustments") }), h("h2", { text: t("adjust_request") }), form, out, list);
  await show();
}

/** @param {HTMLElement} main */
export async function auditPage(main) {
  const entries = (await must(api.GET("/v1/audit-log", { params: { query: { page_size: 200 } } }))).entries;
  main.replaceChildren(h("h1", { text: t("nav_audit") }), table([["when", (e) => e.at], ["who", (e) => `${e.actor} (${e.role})`],
    ["action", (e) => e.action], ["target", (e) => e.target], ["reason", (e) => e.reason], ["outcome", (e) => e.outcome]], entries));
}

/** Staff users (admin): add one (community staff with their region and centre), issue a token shown once. */
/** @param {HTMLElement} main */
export async function staffPage(main) {
  const regions = await visibleRegions();
  const list = h("div", { id: "staff-users" });
  const out = h("div", { id: "staff-result" });
  const userId = h("input", { id: "staff-id", required: true, pattern: "[a-z0-9][a-z0-9._\\-]{0,31}" });
  const role = h("select", { id: "staff-role" },
    ...["community_staff", "viewer", "operator", "admin"].map((r) => h("option", { value: r, text: r })));
  const region = regionSelect(regions, "staff-region");
  const centre = h("input", { id: "staff-centre" });
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "staff-add" }, field("id", userId),
    field("role", role), field("region", region), field("centre", centre),
    h("button", { class: "primary", type: "submit", text: t("staff_add") })));
  const issue = async (/** @type {string} */ id) => {
    try {
      const issued = await must(api.POST("/v1/staff-users/{user_id}/tokens", { params: { path: { user_id: id } }, body: {} }));
      showNotice(out, `${t("token_once")} ${id}: ${issued.token}`);
    } catch (error) {
      showProblem(out, error);
    }
  };
  const show = async () => {
    const users = (await must(api.GET("/v1/staff-users"))).staff_users;
    list.replaceChildren(table([["id", (u) => u.user_id], ["role", (u) => u.role], ["region", (u) => u.region_code],
      ["centre", (u) => u.centre_id], ["token", (u) => h("button", { type: "button", class: "issue-token",
        "data-user": u.user_id, text: t("token_issue"), onclick: () => issue(u.user_id) })]], users));
  };
  onSubmit(form, out, async () => {
    const chosen = /** @type {Schemas["Role"]} */ (val(role));
    const local = chosen === "community_staff";
    await must(api.POST("/v1/staff-users", { body: { user_id: val(userId), role: chosen,
      region_code: local ? val(region) : "", centre_id: local ? val(centre) : "" } }));
    await show();
    await issue(val(userId));
  });
  main.replaceChildren(h("h1", { text: t("nav_staff") }), form, out, list);
  await show();
}
