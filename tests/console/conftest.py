"""The console in a real browser: the ops API (with its console) on real uvicorn over a federation of real services,
Debian's Chromium (installed when missing), playwright-core from npm. Screenshots go to console-screenshots/ (in
.gitignore, kept by CI as test artifacts).

Skips only when Chromium or node's packages cannot be installed here; in CI (CI set) that is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops_api.ops_support import Federation, Ops, RunningApi, make_ops, running_federation, serve_uvicorn

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CARBON_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "console-screenshots"


def _unavailable(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}: the browser tests must run in CI")
    pytest.skip(what)


def _install_chromium() -> None:
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium", "fonts-noto-cjk"], capture_output=True, timeout=600
        )
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


@pytest.fixture(scope="module")
def console_federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    yield from running_federation(tmp_path_factory)


@pytest.fixture(scope="module")
def console_ops(console_federation: Federation) -> Iterator[Ops]:
    api = make_ops(console_federation)
    try:
        yield api
    finally:
        api.client.close()
        api.engine.dispose()


@pytest.fixture(scope="module")
def console(console_ops: Ops) -> Iterator[RunningApi]:
    yield from serve_uvicorn(console_ops.app)
