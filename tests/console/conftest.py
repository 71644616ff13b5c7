"""The console in a real browser against the real system: `carbon up` (every service its own process), the console
address and admin token read from the start-up table as a new user reads them, Debian's Chromium (installed when
missing) driven by playwright-core from npm. Screenshots go to console-screenshots/ (in .gitignore; CI keeps them
as test artifacts).

Skips only when Chromium or node's packages cannot be installed here; in CI (CI set) that is a failure instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.ports import DOWNWARDS, free_base_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CARBON_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "console-screenshots"
# A deadline against a hang, not a measurement: ten processes start on cores other tests share.
UP_DEADLINE_S = 180
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
    env = {key: value for key, value in os.environ.items() if not key.startswith("CARBON_")}
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
