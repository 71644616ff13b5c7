// Small DOM helpers shared by the pages: elements, labelled fields, tables, notices and refusals.
import { hasText, t } from "./i18n.js";

/**
 * An element with attributes (on* as listeners) and children (strings become text).
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node | string | number | null | undefined | false)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "object" ? child : String(child));
  }
  return node;
}

/** A labelled input (the label's text in the current language). @param {string} key @param {HTMLElement} input */
export function field(key, input) {
  return h("label", {}, h("span", { text: t(key) }), input);
}

/**
 * A table of rows; each column is [text key, value of a row, numeric?].
 * @param {Array<[string, (row: any) => any, boolean?]>} columns
 * @param {any[]} rows
 */
export function table(columns, rows) {
  const head = h("tr", {}, ...columns.map(([key, , num]) => h("th", { class: num ? "num" : "", text: t(key) })));
  const body = rows.map((row) =>
    h("tr", {}, ...columns.map(([, value, num]) => {
      const shown = value(row);
      return h("td", { class: num ? "num" : "" }, shown instanceof Node ? shown : String(shown ?? ""));
    })),
  );
  return h("table", {}, h("thead", {}, head), h("tbody", {}, ...body));
}

/** Shows a refusal with its reason code, where a person at the counter reads it. @param {HTMLElement} where */
export function showProblem(where, /** @type {any} */ error) {
  const reason = error && error.reason ? `${error.reason}: ` : "";
  // A refusal staff meet at the counter is also said in plain words of the page's language, before the API's text.
  const plain = error && error.reason && hasText(`reason_${error.reason}`) ? `${t(`reason_${error.reason}`)} — ` : "";
  where.replaceChildren(h("div", { class: "problem", role: "alert", text: `${plain}${reason}${error.message || error}` }));
}

/** @param {HTMLElement} where @param {string} text */
export function showNotice(where, text) {
  where.replaceChildren(h("div", { class: "notice", role: "status", text }));
}

/** Runs an action from a form, with the button off while it runs and any refusal shown in `out`. */
export function onSubmit(/** @type {HTMLFormElement} */ form, /** @type {HTMLElement} */ out, /** @type {() => Promise<void>} */ action) {
  // Enter on a drop-down sends the form too, as it does on a text field: fewer keys at the counter.
  form.addEventListener("keydown", (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (event.key === "Enter" && target.tagName === "SELECT") {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      out.replaceChildren();
      await action();
    } catch (error) {
      showProblem(out, error);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
}

/** Puts `content` in the print area and opens the browser's print dialog. @param {HTMLElement} content */
export function printOut(content) {
  const area = /** @type {HTMLElement} */ (document.getElementById("print-area"));
  area.replaceChildren(content);
  window.print();
}

/** Today as YYYY-MM-DD in the browser's time zone, `days` from now. @param {number} [days] */
export function isoDay(days = 0) {
  const d = new Date(Date.now() + days * 86400000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/**
 * The calendar day in China Standard Time, `days` from now, as YYYY-MM-DD: the day the services count "per day" in
 * (claims, caps, ages), whatever the browser's time zone.
 * @param {number} [days]
 */
export function chinaDay(days = 0) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date(Date.now() + days * 86400000));
}
