// The console: log in with a staff token, then the pages the staff member's role may use (hash routes).
import { api, forget, must, remember, session } from "./api.js";
import { campaignsPage } from "./campaigns.js";
import { conflictsPage } from "./conflicts.js";
import { counterPage } from "./counter.js";
import { lang, t, toggleLang, translate } from "./i18n.js";
import {
  adjustmentsPage, auditPage, catalogPage, dashboardPage, explainPage, nationalPage, partnersPage, settlementPage,
  staffPage,
} from "./ops.js";
import { field, h, onSubmit, showProblem } from "./ui.js";

const COUNTER = ["community_staff", "operator", "admin"];
const ALL = ["viewer", "community_staff", "operator", "admin"];

/** @type {Array<{path: string, key: string, roles: string[], render: (main: HTMLElement) => Promise<void>}>} */
const PAGES = [
  { path: "counter", key: "nav_counter", roles: COUNTER, render: counterPage },
  { path: "dashboard", key: "nav_dashboard", roles: ALL, render: dashboardPage },
  { path: "national", key: "nav_national", roles: ["viewer", "operator", "admin"], render: nationalPage },
  { path: "settlement", key: "nav_settlement", roles: ["viewer", "operator", "admin"], render: settlementPage },
  { path: "campaigns", key: "nav_campaigns", roles: ALL, render: campaignsPage },
  { path: "conflicts", key: "nav_conflicts", roles: ["viewer", "operator", "admin"], render: conflictsPage },
  { path: "explain", key: "nav_explain", roles: ALL, render: explainPage },
  { path: "partners", key: "nav_partners", roles: ["operator", "admin"], render: partnersPage },
  { path: "catalog", key: "nav_catalog", roles: ALL, render: catalogPage },
  { path: "adjustments", key: "nav_adjustments", roles: ["viewer", "operator", "admin"], render: adjustmentsPage },
  { path: "audit", key: "nav_audit", roles: ["admin"], render: auditPage },
  { path: "staff", key: "nav_staff", roles: ["admin"], render: staffPage },
];

const main = /** @type {HTMLElement} */ (document.getElementById("app"));
let generation = 0;

function allowed() {
  const role = session.me ? session.me.role : "";
  return PAGES.filter((page) => page.roles.includes(role));
}

function renderNav() {
  const current = location.hash.replace(/^#\//, "");
  const nav = /** @type {HTMLElement} */ (document.getElementById("nav"));
  nav.replaceChildren(...allowed().map((page) =>
    h("a", { href: `#/${page.path}`, "aria-current": page.path === current ? "page" : false, text: t(page.key) })));
  const who = /** @type {HTMLElement} */ (document.getElementById("who"));
  const me = session.me;
  who.textContent = me ? `${me.user_id} · ${me.role}${me.region_code ? ` · ${me.region_code}/${me.centre_id}` : ""}` : "";
  /** @type {HTMLElement} */ (document.getElementById("logout")).hidden = !me;
}

async function route() {
  translate();
  /** @type {HTMLElement} */ (document.getElementById("lang")).textContent = t("switch");
  if (!session.me) return loginPage();
  const pages = allowed();
  const wanted = location.hash.replace(/^#\//, "");
  const page = PAGES.find((p) => p.path === wanted);
  if (!page) {
    location.hash = `#/${pages[0].path}`;
    return;
  }
  renderNav();
  // Each page renders off-screen and is shown only if no later navigation started meanwhile, so a slow page
  // cannot overwrite the one the user went on to (nor the refusal of a page the role may not open).
  const current = ++generation;
  if (!page.roles.includes(session.me.role)) {
    main.replaceChildren(h("div", { class: "problem", role: "alert", text: t("forbidden_page") }));
    return;
  }
  main.replaceChildren(h("p", { text: t("loading") }));
  const view = h("div", { class: "view" });
  try {
    await page.render(view);
  } catch (error) {
    showProblem(view, error);
  }
  if (current !== generation) return;
  main.replaceChildren(view);
  /** @type {HTMLElement} */ (main.querySelector("[autofocus]") || main).focus();
}

function loginPage() {
  generation += 1;
  renderNav();
  const token = h("input", { id: "token", type: "password", autocomplete: "off", required: true, size: 60 });
  const out = h("div");
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "inline", id: "login" },
    field("login_token", token), h("button", { class: "primary", type: "submit", text: t("login_go") })));
  onSubmit(form, out, async () => {
    remember(/** @type {HTMLInputElement} */ (token).value.trim());
    try {
      session.me = await must(api.GET("/v1/me"));
    } catch (error) {
      forget();
      throw error;
    }
    await route();
  });
  main.replaceChildren(h("h1", { text: t("login_title") }), form, out);
  token.focus();
}

const LARGER_KEY = "carbon-ops-larger";

/** Even larger type on the counter pages, for residents reading along; the choice stays in this browser. */
function applyLarger(/** @type {boolean} */ on) {
  document.body.classList.toggle("larger", on);
  document.getElementById("larger")?.setAttribute("aria-pressed", String(on));
  localStorage.setItem(LARGER_KEY, on ? "1" : "0");
}

async function start() {
  applyLarger(localStorage.getItem(LARGER_KEY) === "1");
  document.getElementById("larger")?.addEventListener("click", () => applyLarger(!document.body.classList.contains("larger")));
  document.getElementById("lang")?.addEventListener("click", () => { toggleLang(); route(); });
  document.getElementById("logout")?.addEventListener("click", () => { forget(); location.hash = ""; route(); });
  window.addEventListener("hashchange", () => { route(); });
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  if (session.token) {
    try {
      session.me = await must(api.GET("/v1/me"));
    } catch {
      forget();
    }
  }
  await route();
}

start();
