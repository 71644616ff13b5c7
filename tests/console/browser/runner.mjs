// One node process and one Chromium for a test module's scenarios (ADR 0806): launching both cost seconds per
// scenario on a shared 2-core machine. A request is a JSON line on stdin, {"scenario", "data", "tokens"}; the answer
// a JSON line on stdout, {"ok", "result" | "error", "screenshots", "seconds"}. Each scenario runs in browser contexts
// of its own, closed after it, so no cookie, storage or page carries from one scenario to the next.
import readline from "node:readline";
import { launch, Run } from "./support.mjs";

const answer = (reply) => process.stdout.write(`${JSON.stringify(reply)}\n`);
// stdout carries the answers only: anything a scenario logs goes to stderr, which the pytest side shows on a failure.
console.log = (...args) => console.error(...args);

let current = null;
// A page's error thrown from an event handler, or a promise nobody awaited, fails the scenario running, not the
// runner (the scenarios after it still run).
const failCurrent = (error) => {
  if (current) {
    current.fail(error);
  } else {
    console.error(error);
    process.exit(1);
  }
};
process.on("uncaughtException", failCurrent);
process.on("unhandledRejection", failCurrent);

const browser = await launch();
const crashed = () => {
  console.error("Chromium went away");
  process.exit(1);
};
browser.on("disconnected", crashed);
answer({ ready: true, version: browser.version() });

for await (const line of readline.createInterface({ input: process.stdin })) {
  const request = JSON.parse(line);
  const started = performance.now();
  const run = new Run(browser, request.tokens ?? {});
  current = run;
  const seconds = () => Math.round(performance.now() - started) / 1000;
  try {
    if (!/^[a-z_]+$/.test(request.scenario)) throw new Error(`no such scenario: ${request.scenario}`);
    const { default: scenario } = await import(`./${request.scenario}.mjs`);
    const playing = scenario(run, request.data ?? {});
    // Closing the contexts after a page error makes the scenario's pending step fail too: that is no news.
    playing.catch(() => {});
    const result = await Promise.race([playing, run.failed]);
    answer({ ok: true, result: result ?? null, seconds: seconds() });
  } catch (error) {
    const screenshots = await run.screenshots(`${request.scenario}-failed`);
    answer({ ok: false, error: String(error?.stack ?? error), screenshots, seconds: seconds() });
  } finally {
    current = null;
    await run.close();
  }
}
// The pytest side closed stdin: the module's scenarios are done.
browser.off("disconnected", crashed);
await browser.close();
