"""Private PostgreSQL and Redis servers a fault test starts, stops and restarts at will, on free ports in a temp dir.

A shared server cannot be stopped under other tests' feet; these belong to one test. PostgreSQL comes from the
binaries of the distribution's packages (/usr/lib/postgresql/<version>/bin) and refuses to run as root, so as root it
runs as the `postgres` user. A test that finds no server binary is skipped loudly (fails under
CARBON_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NoReturn

import pytest
import redis

from tests.ports import free_port


def _missing(what: str) -> NoReturn:
    """Skipped loudly; a failure where CI promises the servers (CARBON_REQUIRE_SERVICES=1), as tests/conftest.py
    does for the shared ones."""
    if os.environ.get("CARBON_REQUIRE_SERVICES") == "1":
        pytest.fail(f"CARBON_REQUIRE_SERVICES=1 but {what}", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {what}")


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PrivatePostgres:
    """initdb'd into a temp dir of its own; start() and stop() as often as a test likes; url() has the
    trust-authenticated superuser."""

    def __init__(self) -> None:
        binaries = _postgres_bin()
        if binaries is None:
            _missing("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
        self._bin = binaries
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                _missing("running as root and there is no postgres user to run PostgreSQL as")
            self._run_as = ["runuser", "-u", "postgres", "--"]
        # Not pytest's tmp_path: its parents are private to the user running the tests, and PostgreSQL may run as
        # another.
        self._root = Path(tempfile.mkdtemp(prefix="carbon-pg-"))
        self._root.chmod(0o777)
        self._data = self._root / "data"
        self._socket_dir = self._root / "sock"
        self._socket_dir.mkdir()
        self._socket_dir.chmod(0o777)
        self.port = free_port()
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.running = False

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._run_as, str(self._bin / tool), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self._socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self._data), "-o", options, "-w", "-t", "60", "-l", str(self._data / "log"), "start"
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """fast: connections are cut, as in a restart; immediate: as in a crash."""
        self._run("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "stop")
        self.running = False

    def close(self) -> None:
        if self.running:
            self.stop("immediate")
        shutil.rmtree(self._root, ignore_errors=True)


class PrivateRedis:
    """redis-server on a free port with no persistence; start() again after stop() begins empty."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("no redis-server on this machine")
        self._binary = binary
        self._root = root
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        arguments = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            [self._binary, *arguments, "--dir", str(self._root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url(), socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def flushall(self) -> None:
        client = redis.Redis.from_url(self.url())
        client.flushall()
        client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def close(self) -> None:
        self.stop()
