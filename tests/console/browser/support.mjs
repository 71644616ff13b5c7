// Shared by the browser scenarios: Debian's Chromium through playwright-core, logging in as a staff member, and a
// screenshot of every page visited (kept under the folder the pytest side names: test artifacts). A scenario is a
// module whose default export runner.mjs calls with its Run and the data the pytest side sent; what it returns is
// the scenario's result.
import assert from "node:assert/strict";
import path from "node:path";
import { chromium } from "playwright-core";

export const base = process.env.CONSOLE_URL;
export const shots = process.env.CONSOLE_SCREENSHOTS || "console-screenshots";
assert.ok(base, "CONSOLE_URL is not set (the pytest side starts the system and sets it)");

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}

/** One scenario's share of the runner's browser: the contexts it opened (closed after it, whatever happens), its own
 * copy of the staff tokens (a scenario may add one), and `failed`, which rejects with the first error any of its
 * pages raised. */
export class Run {
  constructor(browser, tokens) {
    this.browser = browser;
    this.tokens = { ...tokens };
    this.contexts = [];
    this.failed = new Promise((_, reject) => { this.fail = reject; });
    this.failed.catch(() => {}); // raced against the scenario, never awaited alone
  }

  async newContext(options) {
    const context = await this.browser.newContext(options);
    this.contexts.push(context);
    return context;
  }

  async newPage(options) {
    return (await this.newContext(options)).newPage();
  }

  /** A screenshot of every page still open, for whoever reads a failure; their paths. */
  async screenshots(name) {
    const pages = this.contexts.flatMap((context) => context.pages());
    const taken = await Promise.all(pages.map(async (page, i) => {
      const file = path.join(shots, `${name}-${i + 1}.png`);
      return page.screenshot({ path: file, fullPage: true, timeout: 10_000 }).then(() => file, () => null);
    }));
    return taken.filter(Boolean);
  }

  async close() {
    await Promise.all(this.contexts.map((context) => context.close().catch(() => {})));
  }
}

/** A fresh page in a context of its own, logged in as `who`, with window.print recorded instead of opening a dialog;
 * an error on the page, or anything its Content-Security-Policy blocks, fails the scenario. */
export async function loggedIn(run, who, { lang = "zh" } = {}) {
  const context = await run.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
  await context.addInitScript((l) => {
    localStorage.setItem("carbon-ops-lang", l);
    window.__printed = [];
    window.print = () => window.__printed.push(document.getElementById("print-area").innerText);
  }, lang);
  const page = await context.newPage();
  page.on("pageerror", (error) => run.fail(error));
  // Everything the console needs comes from its own origin: anything its Content-Security-Policy blocks is a bug.
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) run.fail(new Error(`blocked by the CSP: ${message.text()}`));
  });
  await page.goto(`${base}/`);
  await page.locator("#token").fill(run.tokens[who]);
  await page.keyboard.press("Enter");
  await page.locator("#who").filter({ hasText: who }).waitFor();
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}
