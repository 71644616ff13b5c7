"""Shared pieces of the ingest benchmarks: private schemas, the three services as real processes (identity, ledger,
ingest on PostgreSQL + Redis, as deployed), accounts with consent, a partner, signed requests, py-spy profiles."""

from __future__ import annotations

import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import bench_trust_support  # type: ignore[import-not-found,unused-ignore]
import grpc
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from identity_svc.domain.real_name import id_check_char
from service_kit import identities
from service_kit.db import normalize_url
from service_kit.logs import ready_address
from service_kit.partner_signing import sign_request
from service_kit.wire import to_timestamp

ROOT = Path(__file__).resolve().parents[1]
REGION = "110000"
PARTNER = "metro"
TRIPS_PER_DAY = 10  # transit_trip's daily cap: every benchmark event earns points


def database_url() -> str:
    return normalize_url(os.environ.get("CARBON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))


def redis_url() -> str:
    return os.environ.get("CARBON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextmanager
def private_schemas(*names: str) -> Iterator[dict[str, str]]:
    """One fresh schema per name (URL with its search_path), dropped afterwards."""
    server_url = database_url()
    schemas = {name: f"bench_{name}_{uuid.uuid4().hex[:8]}" for name in names}
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for schema in schemas.values():
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield {
            name: make_url(server_url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
            for name, schema in schemas.items()
        }
    finally:
        with admin.connect() as conn:
            for schema in schemas.values():
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class Process:
    name: str
    process: subprocess.Popen[str]
    address: str


@contextmanager
def service_process(package: str, env: dict[str, str], replica: int = 0) -> Iterator[Process]:
    """`python -m <package>` on a free port; stopped with SIGTERM afterwards. Named <package>#<n> from the second
    replica on."""
    full_env = {
        **os.environ,
        "CARBON_REGION": REGION,
        "CARBON_PORT": "0",
        "CARBON_LOG_LEVEL": "WARNING",
        "CARBON_MAX_WORKERS": "16",
        **bench_trust_support.env(package, REGION),
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", package], cwd=ROOT, env=full_env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        address = ready_address(line)
        if address:
            break
    else:
        raise RuntimeError(f"{package} exited with {process.wait()} before READY")
    try:
        yield Process(f"{package}#{replica + 1}" if replica else package, process, address)
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def claims_gateway_process(database_url: str) -> Iterator[Process]:
    """`python -m gateway` for activity claims only: no regions, no external callers (claims are made by regional
    ingest identities, which the bench's trust bundle holds)."""
    with tempfile.TemporaryDirectory() as folder:
        callers = Path(folder) / "callers.json"
        callers.write_text(json.dumps({"callers": []}))
        env = {
            "CARBON_REGION": "000000",
            "CARBON_DATABASE_URL": database_url,
            "CARBON_GATEWAY_CONFIG": str(callers),
            "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
        }
        with service_process("gateway", env) as gateway:
            yield gateway


@dataclass
class Region:
    """identity, ledger and ingest of one region as processes, with stubs: `ingests` has one stub per ingest replica
    (`ingest` is the first); identity and ledger stubs reach the first replica of each."""

    processes: list[Process]
    ingests: list[ingest_service_pb2_grpc.IngestServiceStub]
    identity: identity_service_pb2_grpc.IdentityServiceStub
    ledger: ledger_service_pb2_grpc.LedgerServiceStub
    channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def ingest(self) -> ingest_service_pb2_grpc.IngestServiceStub:
        return self.ingests[0]


@contextmanager
def region(urls: dict[str, str], ingest_env: dict[str, str] | None = None, replicas: int = 1) -> Iterator[Region]:
    """One identity process; `replicas` ledger and ingest processes, ingest i calling ledger i (as replicas behind a
    connection-balancing service end up), all on the same databases."""
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    identity_keys = {
        "CARBON_SECRET_IDENTITY_HMAC_KEY": secrets.token_hex(32),
        "CARBON_SECRET_NATIONAL_PERSON_KEY": secrets.token_hex(32),
    }
    from identity_svc.keys import generate_encryption_key

    identity_keys["CARBON_SECRET_IDENTITY_ENCRYPTION_KEYS"] = "k1:" + generate_encryption_key()
    with ExitStack() as stack:
        ledgers = [
            stack.enter_context(service_process("ledger_svc", {"CARBON_DATABASE_URL": urls["ledger"]}, replica))
            for replica in range(replicas)
        ]
        identity = stack.enter_context(
            service_process(
                "identity_svc",
                {
                    "CARBON_DATABASE_URL": urls["identity"],
                    "CARBON_REDIS_URL": redis_url(),
                    "CARBON_IDENTITY_REDIS_PREFIX": f"{prefix}identity:",
                    **identity_keys,
                },
            )
        )
        ingests = [
            stack.enter_context(
                service_process(
                    "ingest_svc",
                    {
                        "CARBON_DATABASE_URL": urls["ingest"],
                        "CARBON_REDIS_URL": redis_url(),
                        "CARBON_INGEST_REDIS_PREFIX": f"{prefix}ingest:",
                        "CARBON_IDENTITY_ADDRESS": identity.address,
                        "CARBON_LEDGER_ADDRESS": ledger.address,
                        **(ingest_env or {}),
                    },
                    replica,
                )
            )
            for replica, ledger in enumerate(ledgers)
        ]
        stack.callback(_drop_redis_keys, prefix)
        # The benchmark's own calls (partners, accounts, events, reads) are the ops API's to make.
        channels = [
            bench_trust_support.channel(p.address, identities.OPS_API) for p in (*ingests, identity, ledgers[0])
        ]
        for channel in channels:
            stack.callback(channel.close)
        yield Region(
            [*ingests, identity, *ledgers],
            [ingest_service_pb2_grpc.IngestServiceStub(channel) for channel in channels[:replicas]],
            identity_service_pb2_grpc.IdentityServiceStub(channels[-2]),
            ledger_service_pb2_grpc.LedgerServiceStub(channels[-1]),
            channels,
        )


def _drop_redis_keys(prefix: str) -> None:
    client = redis.Redis.from_url(redis_url())
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def accounts_for(events: int) -> int:
    """How many accounts take `events` trips in one day without passing the daily cap: a consent takes effect no
    earlier than its account's opening, so a benchmark's events all happen after the accounts were opened."""
    return -(-events // TRIPS_PER_DAY)


def open_accounts(identity: identity_service_pb2_grpc.IdentityServiceStub, count: int) -> list[str]:
    """Accounts with transit consent in effect from now (the time of the grant)."""

    def one(i: int) -> str:
        first17 = f"110105{1950 + i // 336:04d}{i // 28 % 12 + 1:02d}{i % 28 + 1:02d}{i % 1000:03d}"
        opened = identity.OpenAccount(
            ipb.OpenAccountRequest(
                request_id=f"open-{i}",
                channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                name="李明",
                id_number=first17 + id_check_char(first17),
                phone_number=f"139{i:08d}",
                binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id=f"u{i}"),
            )
        )
        number = str(opened.account.account_number)
        identity.GrantConsent(
            ipb.GrantConsentRequest(
                request_id=f"c-{i}",
                account_number=number,
                category=common_pb2.DATA_CATEGORY_TRANSIT,
                channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                recorded_by="alipay",
            )
        )
        return number

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def register_partner(ingest: ingest_service_pb2_grpc.IngestServiceStub) -> str:
    return str(
        ingest.RegisterPartner(
            pb.RegisterPartnerRequest(
                request_id="bench",
                partner=pb.Partner(
                    partner_id=PARTNER,
                    name="Metro",
                    kind=pb.PARTNER_KIND_TRANSIT_OPERATOR,
                    allowed_behaviours=["transit_trip"],
                    allowed_regions=[REGION],
                ),
            )
        ).secret
    )


def trips(accounts: list[str], first: int, count: int, now: datetime) -> list[pb.Event]:
    """Trip events numbered first..first+count, all at `now` (after the accounts were opened and their consent
    granted), spread so no account passes the daily cap."""
    assert first + count <= len(accounts) * TRIPS_PER_DAY, "more events than the accounts can earn in a day"
    return [
        pb.Event(
            event_id=f"e{n}",
            account=common_pb2.AccountRef(account_number=accounts[n % len(accounts)]),
            behaviour="transit_trip",
            quantity_milli=1000,
            occurred_at=to_timestamp(now),
            region_code=REGION,
            # The tap id a transit partner reports: each trip is its own activity (activity claims, ADR 0412).
            evidence_ref=f"bench:trip-{n}",
        )
        for n in range(first, first + count)
    ]


def signed(events: list[pb.Event], batch_id: str, secret: str) -> pb.SubmitEventsRequest:
    return sign_request(pb.SubmitEventsRequest(partner_id=PARTNER, batch_id=batch_id, events=events), "k1", secret)


def ledger_totals(ledger: ledger_service_pb2_grpc.LedgerServiceStub, accounts: list[str]) -> tuple[int, bool]:
    """Sum of the accounts' balances and whether the ledger's books balance."""
    total = sum(ledger.GetBalance(lpb.GetBalanceRequest(account=a)).balance.total_points for a in accounts)
    return total, ledger.CheckConservation(lpb.CheckConservationRequest()).balanced


def p99_ms(latencies_s: list[float]) -> float:
    if len(latencies_s) < 2:
        return round(latencies_s[0] * 1000, 1) if latencies_s else 0.0
    return round(statistics.quantiles(latencies_s, n=100)[98] * 1000, 1)


@contextmanager
def profiled(processes: list[Process], seconds: float, label: str = "") -> Iterator[None]:
    """With CARBON_BENCH_PROFILE=<dir>: py-spy samples every service process for the timed phase (files
    <dir>/<label><process>.txt); with CARBON_BENCH_PROFILE_IDLE=1 waiting threads are sampled too (where a request
    waits: locks, polls, timers). With CARBON_BENCH_PERF=<file>: `perf record` samples the whole machine for it."""
    folder = os.environ.get("CARBON_BENCH_PROFILE", "")
    if not folder and not os.environ.get("CARBON_BENCH_PERF"):
        yield
        return
    spies = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(p.process.pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(Path(folder) / f"{label}{p.name}.txt"),
                "--nonblocking",
                # only threads holding the GIL: where the process spends its Python CPU, not its waits
                "--idle" if os.environ.get("CARBON_BENCH_PROFILE_IDLE") == "1" else "--gil",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in (processes if folder else [])
    ]
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    perf_file = os.environ.get("CARBON_BENCH_PERF", "")
    if perf_file:  # the whole machine, PostgreSQL included, which py-spy cannot see; stopped with the phase
        spies.append(
            subprocess.Popen(
                ["perf", "record", "-a", "-g", "-F", "499", "-o", perf_file],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(0.5)  # the profilers attach; not synchronisation of the system under test
    try:
        yield
    finally:
        if perf_file:
            spies[-1].send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=seconds + 30)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(processes: list[Process]) -> dict[str, float]:
    """User + system CPU seconds each process has used so far, by name."""
    return {p.name: process_cpu_seconds(p.process.pid) for p in processes}


ServerSnapshot = dict[int, tuple[tuple[str, ...], float]]


def server_cpu_seconds() -> ServerSnapshot:
    """Every postgres and redis-server process on this machine (none when not local), by pid: the groups it counts in
    and its CPU seconds so far. Groups: "postgres", "redis", and "postgres_bench_db" for the backends connected to the
    bench's database only, so other engineers' databases on the same server do not count (shared background work,
    the WAL writer and checkpointer, is in "postgres" alone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    ours = f" {make_url(database_url()).database} "
    out: ServerSnapshot = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        key = "postgres" if name.startswith("postgres") else "redis" if name.startswith("redis") else ""
        if key:
            fields = raw.rsplit(")", 1)[1].split()
            groups = (key, "postgres_bench_db") if key == "postgres" and ours in _process_title(stat.parent) else (key,)
            out[int(stat.parent.name)] = (groups, (int(fields[11]) + int(fields[12])) / ticks)
    return out


def server_cpu_between(before: ServerSnapshot, after: ServerSnapshot) -> dict[str, float]:
    """CPU seconds each group used between two snapshots, process by process: one started since counts whole, one
    that exited since is left out (a sum over whichever processes exist would subtract its earlier CPU)."""
    used = {"postgres": 0.0, "postgres_bench_db": 0.0, "redis": 0.0}
    for pid, (groups, seconds) in after.items():
        earlier = before.get(pid)
        spent = seconds - earlier[1] if earlier is not None and earlier[0][0] == groups[0] else seconds
        for group in groups:
            used[group] += spent
    return used


def _process_title(folder: Path) -> str:
    """A backend's title ("postgres: 15/main: <user> <database> <client> <state>"); "" once it has exited."""
    try:
        return (folder / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
