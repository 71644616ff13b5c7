"""The embedded system: the gateway and each region's five services as separate processes on localhost.

SQLite files under one data folder, no Redis. Starts everything, waits until every process reports SERVING, prints
where to look, and on Ctrl-C (or SIGTERM) stops them all, newest first. A process that dies on its own is started
again, as Kubernetes restarts a crashed container (deploy/k8s): the others keep serving meanwhile and retry it, so one
crash does not take the whole system down.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from service_kit import embedded_trust, health
from service_kit.embedded_front_door import (
    DEMO_PARTNER_BEHAVIOURS,
    PARTNER,
    PLATFORM,
    front_door_environment,
    key_file,
    write_demo_partner_secrets,
    write_gateway_callers,
    write_resident_auth_keys,
)
from service_kit.embedded_trust import EmbeddedTrust
from service_kit.identities import identity_of_service
from service_kit.partner_registration import register_community_partners, register_partner
from service_kit.settings import Settings
from service_kit.topology import REGISTRY_FILE, ProcessSpec, Registry

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# Kubernetes' crash-loop back-off, shortened for a laptop: the first restart after 1 s, doubling while the process
# keeps dying within a minute of its start, at most 30 s apart; a process that stayed up a minute starts at 1 s again.
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0
RESTART_RESET_AFTER_S = 60.0


class EmbeddedError(RuntimeError):
    """The system cannot start; the message says why in words a person can act on."""


@dataclass
class Child:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    env: Mapping[str, str]
    started_at: float


@dataclass
class Restart:
    """A crashed child waiting for its restart, and the delay it waited (the next crash soon after doubles it)."""

    child: Child
    due: float
    delay_s: float


def restart_delay(child: Child, previous_delay_s: float, now: float) -> float:
    """How long to wait before starting a crashed child again."""
    if previous_delay_s == 0 or now - child.started_at >= RESTART_RESET_AFTER_S:
        return RESTART_FIRST_S
    return min(previous_delay_s * 2, RESTART_MAX_S)


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM if `carbon up` dies without cleaning up (kill -9), so nothing is orphaned.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on the port. SO_REUSEADDR lets connections of a stopped system (TIME_WAIT) pass:
    only a live listener makes the bind fail."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def check_ports_free(registry: Registry) -> None:
    busy = [spec for spec in registry.processes() if port_in_use(spec.host, spec.port)]
    if busy:
        where = ", ".join(f"{spec.port} ({spec.label})" for spec in busy[:3])
        if len(busy) > 3:
            where += f" and {len(busy) - 3} more"
        raise EmbeddedError(
            f"port in use: {where} on {busy[0].host}. Is another `carbon up` running? "
            "Check with `carbon status`, stop it, or choose other ports with --base-port."
        )


# What passes from `carbon up`'s environment to every child beside OpenTelemetry's OTEL_* variables and secrets. The
# event-following timings pass too: a browser test of campaign bonuses would otherwise wait out ingest's 30 s settle
# margin and incentives' 10 s follow interval (ADR 0806).
PASSED_THROUGH = frozenset(
    {
        "CARBON_LOG_LEVEL",
        "CARBON_LOG_FORMAT",
        "CARBON_CLOCK_OFFSET",
        "CARBON_ENVIRONMENT",
        "CARBON_INGEST_FOLLOW_SETTLE_MS",
        "CARBON_INCENTIVES_FOLLOW_INTERVAL_MS",
    }
)
PROMETHEUS_PORT = "OTEL_EXPORTER_PROMETHEUS_PORT"


def child_environment(
    spec: ProcessSpec, registry: Registry, data_dir: Path, base: Mapping[str, str], trust: EmbeddedTrust | None = None
) -> dict[str, str]:
    # Each child names itself (service.name from its service), so a name given to `carbon up` is not passed on.
    env = {key: value for key, value in base.items() if not key.startswith("CARBON_") and key != "OTEL_SERVICE_NAME"}
    # Log level and format, the rehearsal clock (ADR 0015: the whole system's time shifts together) and secrets pass
    # through; everything that shapes the topology is set here.
    env.update({k: v for k, v in base.items() if k in PASSED_THROUGH})
    if base.get(PROMETHEUS_PORT):
        # One scrape port per process: the given port for the first, the next ones for the others, in plan order.
        position = [process.label for process in registry.processes()].index(spec.label)
        env[PROMETHEUS_PORT] = str(int(base[PROMETHEUS_PORT]) + position)
    env.update({k: v for k, v in base.items() if k.startswith("CARBON_SECRET_")})
    env.update(
        {
            "CARBON_REGION": spec.region_code,
            "CARBON_HOST": spec.host,
            "CARBON_PORT": str(spec.port),
            "CARBON_DATA_DIR": str(data_dir),
            "CARBON_REGISTRY_FILE": str(data_dir / REGISTRY_FILE),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(front_door_environment(spec.service, spec.region_code, data_dir))
    if trust is not None:
        # Who the child is and how it proves it: its key (and certificate under mTLS), and the bundle it checks.
        env.update(trust.env(identity_of_service(spec.service, spec.region_code)))
    if spec.service == "ledger_svc":
        # Each region's ledger runs its scheduled jobs (expiry after midnight, hold timeouts, month end, reminders).
        env["CARBON_LEDGER_SCHEDULER"] = "1"
    if spec.service == "identity_svc":
        # Each region's identity delivers reminders (webhooks as CARBON_REMINDER_WEBHOOKS_FILE names, SMS to a file).
        env["CARBON_IDENTITY_REMINDERS"] = "1"
        # ... and hands minors' accounts over at their 14th birthday, shortly after midnight (docs/adr/0210).
        env["CARBON_IDENTITY_SCHEDULER"] = "1"
    region = next((r for r in registry.regions if r.region_code == spec.region_code), None)
    if spec.service in ("ingest_svc", "identity_svc"):
        # Each region's ingest claims its events' activities at the gateway (docs/adr/0413); its identity judges a
        # guardian of another region there (docs/adr/0209).
        env["CARBON_GATEWAY_ADDRESS"] = registry.gateway_address
    if region is not None:
        env["CARBON_IDENTITY_ADDRESS"] = region.identity_address
        env["CARBON_LEDGER_ADDRESS"] = region.ledger_address
        env["CARBON_REWARDS_ADDRESS"] = region.rewards_address
        env["CARBON_INGEST_ADDRESS"] = region.ingest_address
    return env


# The national secrets every region's services share: the person key (identity: one person links across regions)
# and the activity fingerprint keys (ingest: one activity hashes alike everywhere, docs/adr/0412), by variable, with
# the file each is kept in and how a new one is made.
NATIONAL_SECRETS: dict[str, tuple[str, Callable[[], str]]] = {
    "CARBON_SECRET_NATIONAL_PERSON_KEY": ("national-person-key", lambda: secrets.token_hex(32)),
    "CARBON_SECRET_ACTIVITY_FINGERPRINT_KEYS": ("activity-fingerprint-keys", lambda: "e1:" + secrets.token_hex(32)),
}


def national_secret(data_dir: Path, env: Mapping[str, str], variable: str) -> str:
    """A national secret: taken from the environment when given; otherwise made once per data folder and kept there
    (mode 0600)."""
    if env.get(variable):
        return env[variable]
    file_name, make = NATIONAL_SECRETS[variable]
    path = data_dir / file_name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as key_file:
            key_file.write(make())
    return path.read_text().strip()


OPS_ADMIN_TOKEN_FILE = "ops-admin-token"
OPS_TOKEN_REFRESH_AFTER_S = 60 * 24 * 3600  # tokens live 90 days; renew well before


class Supervisor:
    def __init__(self, registry: Registry, data_dir: Path, out: IO[str] = sys.stdout, mtls: bool = False) -> None:
        self.registry = registry
        self.data_dir = data_dir.resolve()
        self.children: list[Child] = []
        self._out = out
        self.mtls = mtls
        self.trust: EmbeddedTrust | None = None

    def start(self) -> None:
        check_ports_free(self.registry)
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.registry.save(self.data_dir / REGISTRY_FILE)
        codes = [region.region_code for region in self.registry.regions]
        self.trust = embedded_trust.prepare(self.data_dir, codes, self.mtls)
        self.base_env = {**os.environ, **{v: national_secret(self.data_dir, os.environ, v) for v in NATIONAL_SECRETS}}
        write_gateway_callers(self.data_dir, self.registry)
        write_resident_auth_keys(self.data_dir, self.registry)
        for spec in self.registry.processes():
            if spec.service != "ops_api":
                self._spawn(spec, self.base_env)

    def start_ops_api(self) -> Path | None:
        """Starts the ops HTTP API once the regions serve (it signs community events as their partner).

        Returns the file holding an admin bearer token for the embedded system, or None when no API is planned.
        """
        spec = next((spec for spec in self.registry.processes() if spec.service == "ops_api"), None)
        if spec is None:
            return None
        env = dict(self.base_env)
        for region_code, secret in register_community_partners(self.registry, self.operator()).items():
            env[f"CARBON_SECRET_COMMUNITY_PARTNER_{region_code}"] = secret
        self._register_demo_partner()
        child = self._spawn(spec, env)
        self.wait_until_serving()
        return self._ops_admin_token(child, env)

    def operator(self) -> Settings | None:
        """How the supervisor calls the children: as the ops API (None before start)."""
        return self.trust.settings() if self.trust is not None else None

    def _register_demo_partner(self) -> None:
        """The data partner the gateway's demo-partner key belongs to, with its signing secrets in the data folder."""
        from carbon.ingest.v1 import ingest_service_pb2 as ingest_pb

        demo_id, _role, _platform, _file = PARTNER
        registered = register_partner(
            self.registry,
            demo_id,
            "Demo data partner",
            ingest_pb.PARTNER_KIND_CHARGER_NETWORK,
            DEMO_PARTNER_BEHAVIOURS,
            self.operator(),
        )
        write_demo_partner_secrets(self.data_dir, registered)

    def _ops_admin_token(self, child: Child, env: Mapping[str, str]) -> Path:
        token_file = self.data_dir / OPS_ADMIN_TOKEN_FILE
        if token_file.exists() and time.time() - token_file.stat().st_mtime < OPS_TOKEN_REFRESH_AFTER_S:
            return token_file
        command_env = child_environment(child.spec, self.registry, self.data_dir, env, self.trust)
        ops = [sys.executable, "-m", "ops_api"]
        # "exists" on a later start is fine: the user was made the first time.
        subprocess.run([*ops, "create-user", "admin", "--role", "admin"], env=command_env, capture_output=True)
        issued = subprocess.run(
            [*ops, "create-token", "admin", "--label", "carbon-up"], env=command_env, capture_output=True, text=True
        )
        if issued.returncode != 0:
            raise EmbeddedError(f"could not issue an ops admin token: {issued.stderr.strip()}")
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(issued.stdout.strip() + "\n")
        return token_file

    def _spawn(self, spec: ProcessSpec, env: Mapping[str, str]) -> Child:
        child = self._start_process(spec, env)
        self.children.append(child)
        return child

    def restart(self, crashed: Child) -> Child:
        """Starts a crashed child again in its place (the same settings, port and data), appending to its log."""
        child = self._start_process(crashed.spec, crashed.env)
        self.children[self.children.index(crashed)] = child
        return child

    def _start_process(self, spec: ProcessSpec, env: Mapping[str, str]) -> Child:
        log_path = self.data_dir / "logs" / f"{spec.label.replace('/', '-')}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", spec.service],
                env=child_environment(spec, self.registry, self.data_dir, env, self.trust),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return Child(spec, process, log_path, env, time.monotonic())

    def wait_until_serving(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(self.children)
        operator = self.operator()
        with ThreadPoolExecutor(max_workers=8) as pool:
            while pending:
                for child in pending:
                    if child.process.poll() is not None:
                        raise EmbeddedError(
                            f"{child.spec.label} exited with code {child.process.returncode} while starting; "
                            f"last lines of {child.log_path}:\n{_tail(child.log_path)}"
                        )
                states = list(pool.map(lambda c: health.probe(c.spec.service, c.spec.address, 0.5, operator), pending))
                pending = [child for child, state in zip(pending, states, strict=True) if state != "SERVING"]
                if pending and time.monotonic() > deadline:
                    names = ", ".join(child.spec.label for child in pending)
                    raise EmbeddedError(f"not SERVING after {timeout_s:.0f} s: {names} (see {self.data_dir}/logs)")
                if pending:
                    time.sleep(0.1)

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.children.clear()

    def exited(self) -> list[Child]:
        return [child for child in self.children if child.process.poll() is not None]


def keep_restarting(supervisor: Supervisor, stopping: Callable[[], bool], poll_s: float = 0.2) -> None:
    """Until `stopping()`: a child that exits is reported with the end of its log and started again after its
    back-off (clients see UNAVAILABLE meanwhile and retry, as they would a restarting pod)."""
    waiting: dict[str, Restart] = {}
    last_delay: dict[str, float] = {}
    while not stopping():
        now = time.monotonic()
        for child in supervisor.exited():
            label = child.spec.label
            if label in waiting:
                continue
            delay = restart_delay(child, last_delay.get(label, 0.0), now)
            last_delay[label] = delay
            waiting[label] = Restart(child, now + delay, delay)
            print(
                f"{label} exited with code {child.process.returncode}; starting it again in {delay:.0f} s. "
                f"Last lines of {child.log_path}:\n{_tail(child.log_path)}",
                file=sys.stderr,
                flush=True,
            )
        for label, restart in list(waiting.items()):
            if restart.due <= now:
                del waiting[label]
                supervisor.restart(restart.child)
                print(f"{label} started again", file=sys.stderr, flush=True)
        time.sleep(poll_s)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run(registry: Registry, data_dir: Path, print_table: Callable[[Registry, Path], None], mtls: bool = False) -> int:
    """`carbon up`: start, wait, print, then stay until Ctrl-C/SIGTERM, restarting a child that dies. Returns the exit
    code."""
    supervisor = Supervisor(registry, data_dir, mtls=mtls)
    stop = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    started = time.monotonic()
    try:
        supervisor.start()
        supervisor.wait_until_serving()
        token_file = supervisor.start_ops_api()
        print_table(registry, supervisor.data_dir)
        if supervisor.trust is not None:
            print(f"service identities: {supervisor.trust.folder}" + ("  (mTLS between all processes)" if mtls else ""))
        if token_file is not None:
            # A person on their own machine logs in to the console with this token (it stays in the 0600 file too).
            token = token_file.read_text().strip()
            print(f"web console:  http://{registry.ops_api_address}/console/  (log in with the admin token below)")
            print(f"admin token:  {token}  (also in {token_file})")
            print(f"ops HTTP API: http://{registry.ops_api_address}/docs")
        platform_key = key_file(supervisor.data_dir, PLATFORM)
        print(
            f"gateway: {registry.gateway_address}  (a platform's key, `authorization: Bearer <key>`, in {platform_key};"
            " every caller in gateway-callers.json)"
        )
        print(
            f"all {len(supervisor.children)} processes SERVING in {time.monotonic() - started:.1f} s; "
            "Ctrl-C stops them.",
            flush=True,
        )
        keep_restarting(supervisor, lambda: stop)
        print("stopping...", flush=True)
        return 0
    except EmbeddedError as error:
        print(f"carbon up: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        supervisor.stop()
        if stop:
            print("stopped.", flush=True)
