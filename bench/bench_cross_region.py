"""Cross-region transfers through the gateway, live and after a crash, against pgbench on the same server, same run.

Two regions (330000 → 110000) as deployed: per region a ledger and an identity process, each on its own PostgreSQL
schema (identity also on Redis), and the gateway as a process in front of them with production authentication and
resident authorizations. Everything a transfer needs is set up as an outsider does it, through the gateway as a
platform: one person opens an account in each region, grants cross-region sharing consent in both, and for every
transfer asks the source region's identity for a resident authorization (issued before the timed phase; they live 5
minutes). The source accounts are funded in their ledger (fresh points, as ingest would credit them).

Phases:
- unary: CARBON_BENCH_TRANSFERS (default 400) CreateCrossRegionTransfer calls from CARBON_BENCH_CLIENTS (default 4)
  clients over CARBON_BENCH_PAIRS (default 64) account pairs; every answer must be COMMITTED. Transfers/s, p50, p99
  of a call (the `unary_*` figures).
- live (batched): CARBON_BENCH_BATCHED_TRANSFERS (default 3,200) transfers sent as CreateCrossRegionTransfers calls
  of CARBON_BENCH_BATCH (default 25) items each from the same clients over the same pairs; every item must come back
  COMMITTED. Transfers/s; p50 and p99 of a call (what each of its transfers waits) and of a call's time divided by
  its items (`per_transfer_p50_ms`, `per_transfer_p99_ms`). The defaults are the issue's latency target's setting
  (p99 of a call < 200 ms needs few transfers in flight; ADR 0625); CARBON_BENCH_CLIENTS=16 CARBON_BENCH_BATCH=50
  measures the most throughput at a longer wait.
- recovery: the source region's ledger is stopped, CARBON_BENCH_BACKLOG (default 300) transfers are sent (each is
  recorded and answered CREATED: its hold could not be placed), the gateway is killed with kill -9, the ledger comes
  back on its port and the gateway is restarted; its recovery loop must drive the whole backlog (hold, decision,
  credit, commit) to COMMITTED. Rate = backlog ÷ the time from the restarted gateway's READY to the last one
  finished. `leased_at_restart`: the backlog's transfers the killed gateway left leased (a successor that cannot
  take them back waits out their lease, 7 s).
- baseline: pgbench simple-update at the same client count on the same server (bench_baseline_support).
Afterwards both regions' books must balance, the clearing accounts sum to 0 and every point be where it belongs.

CARBON_BENCH_PROFILE=<dir>: py-spy of the gateway and both ledgers during the live (batched) phase
(CARBON_BENCH_PROFILE_IDLE=1: waiting threads too). CPU milliseconds per transfer of each phase
(`unary_cpu_ms_per_transfer`; `cpu_ms_per_transfer` for the batched one) of each service process (the gateway, both
ledgers, both identities), of PostgreSQL and Redis when they run on this machine ("postgres": every server process,
shared work and other databases' backends included; "postgres_bench_db": the backends of the bench's database alone)
and the rows each transfer writes per table (pg_stat_user_tables, since pg_stat_statements is not loaded on the shared
server) are printed.
Last line: one JSON object with the figures and `ratio` = batched transfers/s ÷ pgbench TPS (higher is better; the
unary phase's is `unary_ratio`), and `recovery_ratio` = recovery rate ÷ the batched live rate (the target is ≥ 1).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import bench_trust_support  # type: ignore[import-not-found,unused-ignore]
import grpc
from bench_baseline_support import pgbench_tps
from bench_ingest_support import (
    ROOT,
    Process,
    cpu_seconds,
    p99_ms,
    private_schemas,
    profiled,
    redis_url,
    server_cpu_between,
    server_cpu_seconds,
    service_process,
)
from sqlalchemy import create_engine, text

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from gateway.domain.callers import key_digest_hex
from identity_svc.domain.real_name import id_check_char
from identity_svc.keys import generate_encryption_key
from service_kit import identities
from service_kit.embedded_front_door import resident_auth_key_file, write_resident_auth_keys
from service_kit.logs import ready_address
from service_kit.topology import RegionEntry, Registry

SOURCE, TARGET = "330000", "110000"
CLIENTS = int(os.environ.get("CARBON_BENCH_CLIENTS", "4"))
TRANSFERS = int(os.environ.get("CARBON_BENCH_TRANSFERS", "400"))
BACKLOG = int(os.environ.get("CARBON_BENCH_BACKLOG", "300"))
PAIRS = int(os.environ.get("CARBON_BENCH_PAIRS", "64"))
BATCH = int(os.environ.get("CARBON_BENCH_BATCH", "25"))
BATCHED_TRANSFERS = int(os.environ.get("CARBON_BENCH_BATCHED_TRANSFERS", "3200"))
FUNDING_POINTS = 1_000_000
PLATFORM_KEY = "bench-xr-platform-key"
PLATFORM: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {PLATFORM_KEY}"),)
# Long enough that no transfer of the slowest phase runs out of time while it waits (the default is 60 s).
TRANSFER_LIFE_MS = 300_000
# Shared by every region's identity: one person's accounts in two regions carry one person key.
NATIONAL_PERSON_KEY = secrets.token_hex(32)
TABLES = {"gateway": ("xr_transfers",), "ledger_a": ("transfers", "holds", "lots", "accounts")}


def region_env(package: str, code: str, url: str, **extra: str) -> dict[str, str]:
    return {"CARBON_REGION": code, "CARBON_DATABASE_URL": url, **bench_trust_support.env(package, code), **extra}


def identity_env(code: str, url: str, data_dir: Path, prefix: str) -> dict[str, str]:
    return region_env(
        "identity_svc",
        code,
        url,
        CARBON_REDIS_URL=redis_url(),
        CARBON_IDENTITY_REDIS_PREFIX=f"{prefix}{code}:",
        CARBON_SECRET_IDENTITY_HMAC_KEY=secrets.token_hex(32),
        CARBON_SECRET_NATIONAL_PERSON_KEY=NATIONAL_PERSON_KEY,
        CARBON_SECRET_IDENTITY_ENCRYPTION_KEYS="k1:" + generate_encryption_key(),
        CARBON_RESIDENT_AUTH_KEY_FILE=str(resident_auth_key_file(data_dir, code)),
        CARBON_MAX_WORKERS="4",  # a few lookups per transfer: fewer connections held on a shared server
    )


def write_gateway_files(root: Path, identity: dict[str, str], ledger: dict[str, str]) -> dict[str, str]:
    """Registry, callers (one national platform, rate limit out of the way) and the resident-authorization JWKS."""
    entries = [
        RegionEntry(code, code, code, identity[code], "127.0.0.1:1", ledger[code], "127.0.0.1:1")
        for code in (SOURCE, TARGET)
    ]
    registry = Registry("127.0.0.1:1", entries)
    registry.save(root / "registry.json")
    jwks = write_resident_auth_keys(root, registry)
    caller = {
        "id": "platform", "role": "platform", "platform": "alipay", "regions": [SOURCE, TARGET],
        "keys": [{"sha256": key_digest_hex(PLATFORM_KEY)}], "rate_per_s": 1_000_000, "burst": 1_000_000,
    }  # fmt: skip
    (root / "callers.json").write_text(json.dumps({"callers": [caller]}))
    return {
        "CARBON_REGION": "000000",
        "CARBON_REGISTRY_FILE": str(root / "registry.json"),
        "CARBON_GATEWAY_CONFIG": str(root / "callers.json"),
        "CARBON_RESIDENT_AUTH_JWKS_FILE": str(jwks),
        "CARBON_REDIS_URL": redis_url(),
        "CARBON_REDIS_PREFIX": f"bench:xr:{os.getpid()}:",
        "CARBON_GATEWAY_TRANSFER_LIFE_MS": str(TRANSFER_LIFE_MS),
        "CARBON_GATEWAY_RETRY_MAX_MS": "500",
        # As deployed (deploy/compose.yaml): the restarted gateway takes back the leases the killed one left.
        "CARBON_GATEWAY_INSTANCE": "bench-gateway",
    }


@contextmanager
def gateway_process(env: dict[str, str], log: Path) -> Iterator[Process]:
    """`python -m gateway`, its log lines appended to `log`; killed with SIGKILL afterwards if still running (the
    recovery phase kills it itself)."""
    full = {
        **os.environ,
        "CARBON_PORT": "0",
        "CARBON_LOG_LEVEL": "WARNING",
        "CARBON_MAX_WORKERS": "16",
        **bench_trust_support.env("gateway", SOURCE),
        **env,
    }
    for _attempt in range(3):  # a shared server may refuse a connection for a moment ("too many clients")
        with log.open("ab") as errors:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway"], cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=errors, text=True
            )
        assert process.stdout is not None
        address = ""
        for line in process.stdout:
            address = ready_address(line) or ""
            if address:
                break
        if address:
            break
        print(f"gateway exited with {process.wait()} before READY; see {log}", file=sys.stderr)
        time.sleep(2)
    if not address:
        raise RuntimeError(f"gateway did not start; see {log}")
    try:
        yield Process("gateway", process, address)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def open_pairs(identity: identity_service_pb2_grpc.IdentityServiceStub) -> list[tuple[str, str]]:
    """PAIRS persons, each with an account in both regions and sharing consent in both, opened through the gateway."""

    def one(i: int) -> tuple[str, str]:
        first17 = f"110105{1960 + i // 336:04d}{i // 28 % 12 + 1:02d}{i % 28 + 1:02d}{i % 1000:03d}"
        numbers = []
        for code in (SOURCE, TARGET):
            opened = identity.OpenAccount(
                ipb.OpenAccountRequest(
                    request_id=f"open-{code}-{i}",
                    channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                    name="王芳",
                    id_number=first17 + id_check_char(first17),
                    phone_number=f"137{i:08d}",
                    binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id=f"x{code}{i}"),
                ),
                metadata=(*PLATFORM, ("x-carbon-region", code)),
                timeout=30,
            )
            number = str(opened.account.account_number)
            identity.GrantConsent(
                ipb.GrantConsentRequest(
                    request_id=f"share-{number}",
                    account_number=number,
                    category=common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING,
                    channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                    recorded_by="alipay",
                ),
                metadata=PLATFORM,
                timeout=30,
            )
            numbers.append(number)
        return numbers[0], numbers[1]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(PAIRS)))


def fund(ledger: ledger_service_pb2_grpc.LedgerServiceStub, accounts: list[str]) -> None:
    postings = [
        lpb.Transfer(
            transfer_id=f"fund-{account}", debit_account="system:issuance", credit_account=account,
            amount_points=FUNDING_POINTS, code=lpb.TRANSFER_CODE_EARN,
        )
        for account in accounts
    ]  # fmt: skip
    results = ledger.PostTransfers(lpb.PostTransfersRequest(transfers=postings), timeout=60).results
    assert all(r.status == lpb.TRANSFER_STATUS_POSTED for r in results), results[:3]


Order = tuple[str, str, str, int]  # transfer id, from, to, points


def authorized(identity: identity_service_pb2_grpc.IdentityServiceStub, orders: list[Order]) -> list[str]:
    """Each order's resident authorization, as the resident's platform asks for it through the gateway."""

    def one(order: Order) -> str:
        transfer_id, source, target, points = order
        return str(
            identity.IssueResidentAuthorization(
                ipb.IssueResidentAuthorizationRequest(
                    request_id=transfer_id,
                    account_number=source,
                    operation=ipb.RESIDENT_OPERATION_CROSS_REGION_TRANSFER,
                    amount_points=points,
                    to_account=target,
                ),
                metadata=PLATFORM,
                timeout=30,
            ).authorization
        )

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, orders))


def orders(prefix: str, pairs: list[tuple[str, str]], count: int) -> list[Order]:
    return [(f"{prefix}-{n}", *pairs[n % len(pairs)], 1 + n % 7) for n in range(count)]


def send_all(
    gateway: gateway_service_pb2_grpc.GatewayServiceStub, work: list[Order], tokens: list[str]
) -> tuple[float, list[float], list[int]]:
    """The transfers from CLIENTS threads: elapsed seconds, each call's latency, each answer's state."""
    latencies: list[float] = []
    states: list[int] = []
    retries: list[str] = []

    def one(index: int) -> None:
        transfer_id, source, target, points = work[index]
        request = gw.CreateCrossRegionTransferRequest(
            transfer_id=transfer_id, from_account=source, to_account=target, amount_points=points,
            resident_authorization=tokens[index],
        )  # fmt: skip
        began = time.perf_counter()
        for attempt in range(5):  # UNAVAILABLE: a client repeats the same request (same id: safe)
            try:
                answer = gateway.CreateCrossRegionTransfer(request, metadata=PLATFORM, timeout=60)
                break
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == 4:
                    raise
                retries.append(transfer_id)
                time.sleep(0.2)
        latencies.append(time.perf_counter() - began)
        states.append(answer.transfer.state)

    began = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(one, range(len(work))))
    if retries:  # a crowded shared server refused the gateway a connection now and then
        print(f"{len(retries)} calls repeated after UNAVAILABLE", file=sys.stderr)
    return time.perf_counter() - began, latencies, states


def send_batches(
    gateway: gateway_service_pb2_grpc.GatewayServiceStub, work: list[Order], tokens: list[str]
) -> tuple[float, list[float], list[float], list[int]]:
    """The transfers in CreateCrossRegionTransfers calls of BATCH items from CLIENTS threads: elapsed seconds, each
    call's latency, each call's latency per item, each item's state (-1 for a FAILED item)."""
    latencies: list[float] = []
    per_item: list[float] = []
    states: list[int] = []

    def one(start: int) -> None:
        items = [
            gw.CreateCrossRegionTransferRequest(
                transfer_id=transfer_id, from_account=source, to_account=target, amount_points=points,
                resident_authorization=tokens[start + offset],
            )
            for offset, (transfer_id, source, target, points) in enumerate(work[start : start + BATCH])
        ]  # fmt: skip
        request = gw.CreateCrossRegionTransfersRequest(transfers=items)
        began = time.perf_counter()
        for attempt in range(5):  # UNAVAILABLE: a client repeats the same batch (same ids: safe)
            try:
                answer = gateway.CreateCrossRegionTransfers(request, metadata=PLATFORM, timeout=120)
                break
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == 4:
                    raise
                time.sleep(0.2)
        took = time.perf_counter() - began
        latencies.append(took)
        per_item.append(took / len(items))
        for result in answer.results:
            failed = result.status == gw.CROSS_REGION_TRANSFER_RESULT_STATUS_FAILED
            if failed:
                print(f"{result.transfer_id}: {result.failure_reason} {result.failure_message}", file=sys.stderr)
            states.append(-1 if failed else result.transfer.state)

    began = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(one, range(0, len(work), BATCH)))
    return time.perf_counter() - began, latencies, per_item, states


def measured(
    services: list[Process], urls: dict[str, str], count: int, send: Callable[[], tuple[float, list[int]]]
) -> tuple[float, list[int], dict[str, float], dict[str, float]]:
    """One phase: elapsed seconds, states, CPU ms per transfer by process, rows written per transfer by table."""
    before = rows_written(urls)
    cpu_before, servers_before = cpu_seconds(services), server_cpu_seconds()
    elapsed, states = send()
    cpu_after, servers_after = cpu_seconds(services), server_cpu_seconds()
    after = rows_written(urls)
    cpu_ms = {name: round((cpu_after[name] - cpu_before[name]) * 1000 / count, 2) for name in cpu_after}
    servers = server_cpu_between(servers_before, servers_after)
    cpu_ms.update({name: round(seconds * 1000 / count, 2) for name, seconds in servers.items()})
    per_transfer = {
        f"{schema}.{table}": round((after[schema][table] - before[schema].get(table, 0)) / count, 1)
        for schema in after
        for table in after[schema]
    }
    return elapsed, states, cpu_ms, per_transfer


def rows_written(urls: dict[str, str]) -> dict[str, dict[str, int]]:
    """Rows inserted + updated so far per table of the gateway's and the source ledger's schemas."""
    out: dict[str, dict[str, int]] = {}
    for name, tables in TABLES.items():
        engine = create_engine(urls[name])
        with engine.connect() as conn:
            query = text(
                "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
                " WHERE schemaname = current_schema() AND relname = ANY(:tables)"
            )
            out[name] = {row[0]: int(row[1]) for row in conn.execute(query, {"tables": list(tables)})}
        engine.dispose()
    return out


def unfinished(gateway_url: str) -> Callable[[], int]:
    engine = create_engine(gateway_url)

    def count() -> int:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM xr_transfers WHERE state NOT IN ('COMMITTED', 'RELEASED')")
            return int(conn.execute(query).scalar_one())

    return count


def leased_now(gateway_url: str) -> int:
    """Unfinished transfers whose lease has not run out: what a killed gateway left its successor to wait for."""
    engine = create_engine(gateway_url)
    with engine.connect() as conn:
        query = text(
            "SELECT count(*) FROM xr_transfers WHERE state NOT IN ('COMMITTED', 'RELEASED')"
            " AND lease_until > now() AT TIME ZONE 'UTC'"
        )
        found = int(conn.execute(query).scalar_one())
    engine.dispose()
    return found


def committed(gateway_url: str, prefix: str) -> int:
    engine = create_engine(gateway_url)
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM xr_transfers WHERE state = 'COMMITTED' AND transfer_id LIKE :p")
        found = int(conn.execute(query, {"p": f"{prefix}-%"}).scalar_one())
    engine.dispose()
    return found


def check_books(ledgers: dict[str, ledger_service_pb2_grpc.LedgerServiceStub], pairs: list[tuple[str, str]]) -> None:
    """Both books balance, clearing sums to 0, every point is in a source or a target account, none held."""
    for stub in ledgers.values():
        assert stub.CheckConservation(lpb.CheckConservationRequest(), timeout=120).balanced
    clearing = sum(
        stub.GetBalance(lpb.GetBalanceRequest(account="system:clearing"), timeout=30).balance.total_points
        for stub in ledgers.values()
    )
    assert clearing == 0, clearing
    total = 0
    for source, target in pairs:
        for code, account in ((SOURCE, source), (TARGET, target)):
            balance = ledgers[code].GetBalance(lpb.GetBalanceRequest(account=account), timeout=30).balance
            assert balance.available_points == balance.total_points, (account, balance)
            total += balance.total_points
    assert total == FUNDING_POINTS * len(pairs), total


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-xr-"))
    prefix = f"bench:xr:{secrets.token_hex(4)}:"
    names = ("identity_a", "ledger_a", "identity_b", "ledger_b", "gateway", "pgbench")
    with private_schemas(*names) as urls:
        with ExitStack() as stack:
            # Keys first (identity signs with them), then the region's processes.
            write_resident_auth_keys(
                root, Registry("127.0.0.1:1", [RegionEntry(c, c, c, "", "", "", "") for c in (SOURCE, TARGET)])
            )
            ledger_env = {
                SOURCE: region_env("ledger_svc", SOURCE, urls["ledger_a"]),
                TARGET: region_env("ledger_svc", TARGET, urls["ledger_b"]),
            }
            ledgers = {
                code: stack.enter_context(service_process("ledger_svc", env)) for code, env in ledger_env.items()
            }
            for code, ledger in ledgers.items():
                ledger.name = f"ledger_{code}"  # each its own profile file
            id_urls = {SOURCE: urls["identity_a"], TARGET: urls["identity_b"]}
            identities_ = {
                code: stack.enter_context(service_process("identity_svc", identity_env(code, url, root, prefix)))
                for code, url in id_urls.items()
            }
            gateway_env = write_gateway_files(
                root,
                {code: p.address for code, p in identities_.items()},
                {code: p.address for code, p in ledgers.items()},
            )
            gateway_env["CARBON_DATABASE_URL"] = urls["gateway"]
            ledger_stubs = {
                code: ledger_service_pb2_grpc.LedgerServiceStub(
                    stack.enter_context(bench_trust_support.channel(p.address, identities.OPS_API))
                )
                for code, p in ledgers.items()
            }
            gateway = stack.enter_context(gateway_process(gateway_env, root / "gateway.log"))
            channel = stack.enter_context(grpc.insecure_channel(gateway.address))
            gw_stub = gateway_service_pb2_grpc.GatewayServiceStub(channel)
            gw_identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
            pairs = open_pairs(gw_identity)
            fund(ledger_stubs[SOURCE], [source for source, _ in pairs])

            warm = orders("warm", pairs, CLIENTS * 2)
            send_all(gw_stub, warm, authorized(gw_identity, warm))
            services = [gateway, *ledgers.values(), *identities_.values()]
            for code, identity_process in identities_.items():
                identity_process.name = f"identity_{code}"
            committed_state = gw.CROSS_REGION_TRANSFER_STATE_COMMITTED

            unary = orders("unary", pairs, TRANSFERS)
            unary_tokens = authorized(gw_identity, unary)
            unary_latencies: list[float] = []

            def send_unary() -> tuple[float, list[int]]:
                elapsed, latencies, states = send_all(gw_stub, unary, unary_tokens)
                unary_latencies.extend(latencies)
                return elapsed, states

            unary_s, states, unary_cpu_ms, unary_rows = measured(services, urls, TRANSFERS, send_unary)
            assert all(s == committed_state for s in states), sorted(set(states))
            unary_per_s = TRANSFERS / unary_s

            warm_batch = orders("warmb", pairs, CLIENTS * BATCH)
            send_batches(gw_stub, warm_batch, authorized(gw_identity, warm_batch))
            live = orders("live", pairs, BATCHED_TRANSFERS)
            tokens = authorized(gw_identity, live)
            latencies: list[float] = []
            per_item: list[float] = []

            def send_batched() -> tuple[float, list[int]]:
                elapsed, call_latencies, item_latencies, states = send_batches(gw_stub, live, tokens)
                latencies.extend(call_latencies)
                per_item.extend(item_latencies)
                return elapsed, states

            with profiled([gateway, *ledgers.values()], 20):
                elapsed, states, cpu_ms, per_transfer = measured(services, urls, BATCHED_TRANSFERS, send_batched)
            assert all(s == committed_state for s in states), sorted(set(states))
            live_per_s = BATCHED_TRANSFERS / elapsed

            # Recovery: the source ledger down while the backlog is recorded, the gateway killed, both back.
            backlog = orders("backlog", pairs, BACKLOG)
            backlog_tokens = authorized(gw_identity, backlog)
            source_port = ledgers[SOURCE].address.rsplit(":", 1)[-1]
            ledgers[SOURCE].process.terminate()
            ledgers[SOURCE].process.wait(timeout=30)
            _, _, backlog_states = send_all(gw_stub, backlog, backlog_tokens)
            assert all(s == gw.CROSS_REGION_TRANSFER_STATE_CREATED for s in backlog_states), sorted(set(backlog_states))
            gateway.process.send_signal(signal.SIGKILL)
            gateway.process.wait(timeout=30)
            restarted_ledger = stack.enter_context(
                service_process("ledger_svc", {**ledger_env[SOURCE], "CARBON_PORT": source_port})
            )
            ledgers[SOURCE] = restarted_ledger
            left = unfinished(urls["gateway"])
            leased_at_restart = leased_now(urls["gateway"])
            restarted = stack.enter_context(gateway_process(gateway_env, root / "gateway.log"))
            began = time.perf_counter()
            deadline = began + 600
            while left() and time.perf_counter() < deadline:
                time.sleep(0.05)
            drained_s = time.perf_counter() - began
            assert left() == 0, "the backlog did not drain in 10 minutes"
            assert committed(urls["gateway"], "backlog") == BACKLOG
            recovery_per_s = BACKLOG / drained_s
            del restarted
            check_books(ledger_stubs, pairs)

        # After the services stopped, so that pgbench's connections do not add to theirs on a shared server.
        baseline_tps = pgbench_tps(urls["pgbench"], CLIENTS)
    figures = {
        "clients": CLIENTS,
        "unary_transfers": TRANSFERS,
        "unary_transfers_per_s": round(unary_per_s, 1),
        "unary_p50_ms": round(statistics.median(unary_latencies) * 1000, 1),
        "unary_p99_ms": p99_ms(unary_latencies),
        "unary_rows_written_per_transfer": unary_rows,
        "unary_cpu_ms_per_transfer": unary_cpu_ms,
        "batch": BATCH,
        "transfers": BATCHED_TRANSFERS,
        "transfers_per_s": round(live_per_s, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": p99_ms(latencies),
        "per_transfer_p50_ms": round(statistics.median(per_item) * 1000, 2),
        "per_transfer_p99_ms": p99_ms(per_item),
        "backlog": BACKLOG,
        "recovery_s": round(drained_s, 2),
        "recovery_per_s": round(recovery_per_s, 1),
        "recovery_ratio": round(recovery_per_s / live_per_s, 2),
        "leased_at_restart": leased_at_restart,
        "rows_written_per_transfer": per_transfer,
        "cpu_ms_per_transfer": cpu_ms,
        "pgbench_tps": round(baseline_tps, 1),
    }
    print(
        f"cross-region transfers, unary: {figures['unary_transfers_per_s']}/s (p50 {figures['unary_p50_ms']} ms, p99"
        f" {figures['unary_p99_ms']} ms); batched by {BATCH}: {figures['transfers_per_s']}/s (a call's p50"
        f" {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms); recovery of {BACKLOG}: {figures['recovery_per_s']}/s;"
        f" pgbench simple-update {figures['pgbench_tps']} TPS"
    )
    print(f"CPU ms per transfer, unary: {unary_cpu_ms}; batched: {cpu_ms}")
    baseline = {
        "baseline": f"pgbench simple-update TPS, {CLIENTS} clients, same server",
        "unary_ratio": round(unary_per_s / baseline_tps, 3),
        "ratio": round(live_per_s / baseline_tps, 3),
    }
    shutil.rmtree(root, True)  # kept after a failure: the gateway's log is there
    print(json.dumps({**figures, **baseline}))


if __name__ == "__main__":
    main()
