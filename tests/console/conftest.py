"""The console in a real browser against the real system: `carbon up` (every service its own process), the console
address and admin token read from the start-up table as a new user reads them, Debian's Chromium (installed when
missing) driven by playwright-core from npm, one node process and one Chromium per test module (ADR 0806).
Screenshots go to console-screenshots/ (in .gitignore; CI keeps them as test artifacts).

Skips only when Chromium or node's packages cannot be installed here; in CI (CI set) that is a failure instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.ports import DOWNWARDS, free_base_port

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().parent / "browser" / "runner.mjs"
CHROMIUM = Path(os.environ.get("CARBON_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "console-screenshots"
# A deadline against a hang, not a measurement: ten processes start on cores other tests share.
UP_DEADLINE_S = 180
# Deadlines against hangs: node and Chromium starting; a scenario driving a dozen pages on cores other tests share
# (playwright's own 30 s per step fails a stuck step long before).
BROWSER_START_DEADLINE_S = 60
SCENARIO_DEADLINE_S = 240
# Incentives pays a campaign bonus once it has followed the event, which ingest lists only once it has settled: by
# default 30 s, then up to 10 s to the next follow, most of what the browser tests waited for (ADR 0806). One second
# is margin enough here: the scenarios record events one at a time, each committed before the page shows it, so no
# transaction accepting an earlier event can commit after a later one was listed.
FOLLOWING = {"CARBON_INGEST_FOLLOW_SETTLE_MS": "1000", "CARBON_INCENTIVES_FOLLOW_INTERVAL_MS": "500"}
# Guangzhou's catalog offers recycling, which the counter records there (the community partner allowed it on start).
REGIONS = "330000,440100"
# Staff the scenarios act as, besides the admin carbon up made: (role, region, centre).
STAFF = {
    "zj-staff": ("community_staff", "330000", "zj-gongshu-1"),
    "gz-staff": ("community_staff", "440100", "gz-tianhe-1"),
    "op1": ("operator", "", ""),
    "op2": ("operator", "", ""),
    "viewer": ("viewer", "", ""),
}


def _unavailable(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}: the browser tests must run in CI")
    pytest.skip(what)


def _install_chromium() -> None:
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "-qq", "chromium", "fonts-noto-cjk"]
        subprocess.run(install, capture_output=True, timeout=600)
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing and `apt-get install chromium` did not install it")


def require_node_packages() -> None:
    """playwright-core, openapi-typescript and tsc from npm (`npm ci` when missing)."""
    if (ROOT / "node_modules" / "playwright-core").exists():
        return
    if shutil.which("npm"):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, capture_output=True, timeout=600)
    if not (ROOT / "node_modules" / "playwright-core").exists():
        _unavailable("node_modules/playwright-core is missing and `npm ci` did not install it")


@pytest.fixture(scope="session")
def browser_ready() -> Path:
    """Chromium and playwright-core installed; the screenshot folder made."""
    _install_chromium()
    require_node_packages()
    SCREENSHOTS.mkdir(exist_ok=True)
    return CHROMIUM


@dataclass
class Console:
    url: str
    tokens: dict[str, str]
    output: list[str] = field(default_factory=list)
    # carbon up's data folder: the demo partner's gateway key and signing secrets, the registry (gateway address).
    data_dir: Path = Path()

    def api(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=30)


def _start_up(data_dir: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """`carbon up` until it says every process is SERVING; its output so far."""
    command = [sys.executable, "-m", "service_kit.cli", "up", "--data-dir", str(data_dir)]
    command += ["--regions", REGIONS, "--base-port", str(free_base_port(DOWNWARDS))]
    env = {key: value for key, value in os.environ.items() if not key.startswith("CARBON_")} | FOLLOWING
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    output: list[str] = []
    started = time.monotonic()
    for line in process.stdout:
        output.append(line)
        if "SERVING in" in line:
            return process, output
        if time.monotonic() - started > UP_DEADLINE_S:
            break
    process.kill()
    process.wait()
    raise AssertionError("carbon up did not get ready:\n" + "".join(output))


def _add_staff(console: Console) -> None:
    with console.api("admin") as admin:
        for user_id, (role, region, centre) in STAFF.items():
            body = {"user_id": user_id, "role": role, "region_code": region, "centre_id": centre}
            added = admin.post("/v1/staff-users", json=body, headers={"X-Request-Id": f"add-{user_id}"})
            assert added.status_code == 201, added.text
            issued = admin.post(f"/v1/staff-users/{user_id}/tokens", json={"label": "browser tests"})
            assert issued.status_code == 201, issued.text
            console.tokens[user_id] = issued.json()["token"]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The system as `carbon up` starts it, with the console's address and admin token from its start-up table."""
    data_dir = tmp_path_factory.mktemp("carbon-up")
    process, output = _start_up(data_dir)
    try:
        text = "".join(output)
        url = re.search(r"web console:\s+(http://\S+)/console/", text)
        token = re.search(r"admin token:\s+(cops_\S+)", text)
        assert url and token, f"the start-up table names no console address or admin token:\n{text}"
        running = Console(url.group(1), {"admin": token.group(1)}, output, data_dir)
        _add_staff(running)
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Scenarios:
    """tests/console/browser/runner.mjs: one node process and one Chromium, each scenario asked for as a JSON line and
    run in browser contexts of its own. A scenario that fails, or gives no answer by its deadline, fails the test
    with the browser's message, what node wrote to stderr and the screenshots of its pages; after a deadline the
    runner is stopped and the next scenario starts a new one."""

    def __init__(self, console: Console, chromium: Path) -> None:
        self._console = console
        self._chromium = chromium
        self._process: subprocess.Popen[str] | None = None
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=200)
        self._stderr_lock = threading.Lock()

    def run(self, name: str, data: dict[str, Any] | None = None) -> Any:
        """The scenario's result (what its function returned), once it has passed."""
        process = self._running()
        assert process.stdin is not None
        request = {"scenario": name, "data": data or {}, "tokens": self._console.tokens}
        # A runner that has just exited says so below (no answer), with what it wrote to stderr.
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        answer = self._answer(SCENARIO_DEADLINE_S)
        if answer is None:
            self.close(kill=True)  # a runner stuck in a scenario would read no end of input
            why = f"no answer from the browser (its runner exited, or took over {SCENARIO_DEADLINE_S} s)"
            raise AssertionError(f"{name}: {why}\n{self._errors()}")
        # Shown with -s, and beside a failure: what each scenario costs, to see where the browser tests' time goes.
        print(f"browser scenario {name}: {answer['seconds']:.1f} s")
        if not answer["ok"]:
            shots = "\n".join(answer["screenshots"]) or "(no page open)"
            error = answer["error"]
            raise AssertionError(f"{name} failed in the browser:\n{error}\nscreenshots:\n{shots}\n{self._errors()}")
        return answer["result"]

    def close(self, kill: bool = False) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        assert process.stdin is not None
        if not kill:
            try:
                process.stdin.close()  # the runner's end of input: it closes Chromium and exits
                process.wait(timeout=30)
                return
            except (OSError, subprocess.TimeoutExpired):
                pass
        # Chromium, on a pipe from node, exits when node is gone.
        process.kill()
        process.wait()
        with contextlib.suppress(OSError):
            process.stdin.close()

    def _running(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self.close()
        env = {**os.environ, "CONSOLE_URL": self._console.url, "CONSOLE_SCREENSHOTS": str(SCREENSHOTS)}
        env["CHROMIUM"] = str(self._chromium)
        command = ["node", str(RUNNER)]
        pipe = subprocess.PIPE
        self._process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=pipe, stdout=pipe, stderr=pipe, text=True)
        self._answers = queue.Queue()
        with self._stderr_lock:
            self._stderr.clear()
        assert self._process.stdout is not None and self._process.stderr is not None
        threading.Thread(target=self._read_answers, args=(self._process.stdout, self._answers), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self._process.stderr,), daemon=True).start()
        ready = self._answer(BROWSER_START_DEADLINE_S)
        if ready is None or not ready.get("ready"):
            self.close()
            raise AssertionError(f"the browser runner did not start:\n{self._errors()}")
        return self._process

    @staticmethod
    def _read_answers(stdout: IO[str], answers: queue.Queue[str | None]) -> None:
        for line in stdout:
            answers.put(line)
        answers.put(None)  # the runner exited

    def _read_stderr(self, stderr: IO[str]) -> None:
        for line in stderr:
            with self._stderr_lock:
                self._stderr.append(line)

    def _answer(self, deadline_s: float) -> dict[str, Any] | None:
        """The runner's next answer; None when it exited or gave none by the deadline."""
        try:
            line = self._answers.get(timeout=deadline_s)
        except queue.Empty:
            return None
        return None if line is None else dict(json.loads(line))

    def _errors(self) -> str:
        with self._stderr_lock:
            return "node's stderr:\n" + "".join(self._stderr)


@pytest.fixture(scope="module")
def scenarios(browser_ready: Path, console: Console) -> Iterator[Scenarios]:
    """The module's browser scenarios, run by one node process in one Chromium."""
    runner = Scenarios(console, browser_ready)
    try:
        yield runner
    finally:
        runner.close()
