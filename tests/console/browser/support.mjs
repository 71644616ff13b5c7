// Shared by the browser scenarios: Debian's Chromium through playwright-core, logging in as a staff member, and a
// screenshot of every page visited (kept under the folder the pytest side names: test artifacts).
import assert from "node:assert/strict";
import path from "node:path";
import { chromium } from "playwright-core";

export const base = process.env.CONSOLE_URL;
export const tokens = JSON.parse(process.env.CONSOLE_TOKENS || "{}");
export const shots = process.env.CONSOLE_SCREENSHOTS || "console-screenshots";
export const data = JSON.parse(process.env.CONSOLE_DATA || "{}");
assert.ok(base, "CONSOLE_URL is not set (the pytest side starts the system and sets it)");

export async function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}

/** A fresh page logged in as `who`, with window.print recorded instead of opening a dialog. */
export async function loggedIn(b, who, { lang = "zh" } = {}) {
  const context = await b.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
  await context.addInitScript((l) => {
    localStorage.setItem("carbon-ops-lang", l);
    window.__printed = [];
    window.print = () => window.__printed.push(document.getElementById("print-area").innerText);
  }, lang);
  const page = await context.newPage();
  page.on("pageerror", (error) => { throw error; });
  // Everything the console needs comes from its own origin: anything its Content-Security-Policy blocks is a bug.
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) throw new Error(`blocked by the CSP: ${message.text()}`);
  });
  await page.goto(`${base}/`);
  await page.locator("#token").fill(tokens[who]);
  await page.keyboard.press("Enter");
  await page.locator("#who").filter({ hasText: who }).waitFor();
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** Runs a scenario, closing the browser whatever happens; a failure exits non-zero with its message. */
export async function scenario(run) {
  const b = await browser();
  try {
    await run(b);
  } finally {
    await b.close();
  }
}
