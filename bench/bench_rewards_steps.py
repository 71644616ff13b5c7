"""Where a redemption's time goes: rewards' own work (SQL, Python) beside the ledger's Hold and CommitHold.

Two measurements in one run, both with 32 concurrent clients against the same `python -m ledger_svc` on PostgreSQL:
(a) the ledger alone: Hold + CommitHold pairs over gRPC, as rewards calls them;
(b) Redemptions.redeem in this process (no rewards gRPC hop) over that ledger, timed per step through a timing
    proxy around the ledger client and the service's checkpoints, with the SQL statements and commits counted.
The baseline, on the same server in the same run after the ledger stopped: pgbench simple-update TPS at the same
concurrency (bench_baseline_support.py). Last line: one JSON object; "ratio" = in-process redemptions/s ÷ pgbench
TPS, "ratio_ledger_pairs" = Hold+CommitHold pairs/s ÷ pgbench TPS (higher is better).

    CARBON_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python bench/bench_rewards_steps.py
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bench_trust_support  # type: ignore[import-not-found,unused-ignore]
from bench_baseline_support import pgbench_tps  # type: ignore[import-not-found,unused-ignore]
from bench_rewards import (  # type: ignore[import-not-found,unused-ignore]
    ACCOUNTS,
    CLIENTS,
    REGION,
    free_port,
    run_clients,
    spawn,
)
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from carbon.ledger.v1 import ledger_service_pb2 as ledger_pb2
from carbon.ledger.v1 import ledger_service_pb2_grpc as ledger_pb2_grpc
from rewards_svc.clients import GrpcLedger, HoldView, Ledger
from rewards_svc.domain.catalog import Reward
from rewards_svc.server import build_services
from service_kit import db, identities
from service_kit.accounts import new_account_number
from service_kit.db import normalize_url
from service_kit.settings import Settings

REDEMPTIONS = int(os.environ.get("BENCH_REDEMPTIONS", "2000"))
PAIRS = int(os.environ.get("BENCH_PAIRS", "2000"))


class StepTimes:
    """Per-thread step clocks: each mark closes the step that ran since the previous one."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._local = threading.local()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._local.last = time.perf_counter()

    def mark(self, step: str) -> None:
        now = time.perf_counter()
        with self._lock:
            self.totals[step] += now - self._local.last
        self._local.last = now

    def add(self, step: str, seconds: float) -> None:
        with self._lock:
            self.totals[step] += seconds


class TimedLedger:
    """The ledger client with Hold and CommitHold timed; the rewards-side step clock skips their time."""

    def __init__(self, inner: GrpcLedger, steps: StepTimes) -> None:
        self._inner = inner
        self._steps = steps

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def hold(
        self, hold_id: str, account: str, amount_points: int, timeout_s: int, reference: str, commit_to: str = ""
    ) -> HoldView:
        self._steps.mark("rewards: before hold")
        try:
            return self._inner.hold(hold_id, account, amount_points, timeout_s, reference, commit_to)
        finally:
            self._steps.mark("ledger: Hold")

    def commit_hold(self, hold_id: str, credit_account: str) -> HoldView:
        self._steps.mark("rewards: vouchers (between hold and commit)")
        try:
            return self._inner.commit_hold(hold_id, credit_account)
        finally:
            self._steps.mark("ledger: CommitHold")


@contextmanager
def counted(engine: Any) -> Iterator[dict[str, int]]:
    counts = {"statements": 0, "commits": 0, "checkouts": 0}
    lock = threading.Lock()

    def bump(name: str) -> Any:
        def listener(*_args: Any, **_kwargs: Any) -> None:
            with lock:
                counts[name] += 1

        return listener

    listeners = [
        ("before_cursor_execute", bump("statements")),
        ("commit", bump("commits")),
    ]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    event.listen(engine.pool, "checkout", bump("checkouts"))
    yield counts


def ledger_pairs(stub: ledger_pb2_grpc.LedgerServiceStub, accounts: list[str]) -> dict[str, float]:
    hold_s: list[float] = []
    commit_s: list[float] = []
    lock = threading.Lock()

    def pair(index: int) -> None:
        hold_id = f"pair-{index}-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        stub.Hold(
            ledger_pb2.HoldRequest(
                hold_id=hold_id, account=accounts[index % len(accounts)], amount_points=100,
                code=ledger_pb2.TRANSFER_CODE_REDEEM,
            ),
            timeout=30,
        )  # fmt: skip
        held = time.perf_counter()
        stub.CommitHold(ledger_pb2.CommitHoldRequest(hold_id=hold_id, credit_account="system:redemption"), timeout=30)
        with lock:
            hold_s.append(held - started)
            commit_s.append(time.perf_counter() - held)

    elapsed, _ = run_clients(pair, PAIRS)
    return {
        "pairs_per_s": PAIRS / elapsed,
        "hold_ms": 1000 * sum(hold_s) / len(hold_s),
        "commit_ms": 1000 * sum(commit_s) / len(commit_s),
    }


def redeem_steps(ledger_address: str, url: str, accounts: list[str]) -> dict[str, Any]:
    steps = StepTimes()
    engine = db.make_engine(url, pool_size=CLIENTS)
    db.migrate("rewards_svc", engine)
    settings = bench_trust_support.server(Settings(service="rewards_svc", region_code=REGION))
    grpc_ledger = GrpcLedger(ledger_address, settings=settings)
    ledger: Ledger = TimedLedger(grpc_ledger, steps)  # type: ignore[assignment]
    services = build_services(settings, engine, ledger=ledger, checkpoint=lambda _step: None)
    item = Reward(
        reward_id="bench-item", name_en="Bench item", name_zh="", category="PRACTICAL", price_points=100,
        face_value_cents=100, provider="bench", region_codes=(), stock=-1, limit_per_day=0, limit_per_month=0,
        limit_lifetime=0, available_from=None, available_until=None, voucher_lifetime_days=30,
    )  # fmt: skip
    services.catalog.create_reward("bench-create", item)

    def redeem(index: int) -> None:
        steps.start()
        services.redemptions.redeem(f"steps-{index}", accounts[index % len(accounts)], "bench-item", 1, REGION)
        steps.mark("rewards: after commit (complete, answer)")

    run_clients(lambda index: redeem(REDEMPTIONS + index), CLIENTS * 2)  # warm-up
    steps.totals.clear()
    with counted(engine) as counts:
        elapsed, latencies = run_clients(redeem, REDEMPTIONS)
    grpc_ledger.close()
    engine.dispose()
    per = {step: 1000 * seconds / REDEMPTIONS for step, seconds in steps.totals.items()}
    return {
        "redemptions_per_s": REDEMPTIONS / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "steps_ms": per,
        "statements_per_redemption": counts["statements"] / REDEMPTIONS,
        "commits_per_redemption": counts["commits"] / REDEMPTIONS,
        "checkouts_per_redemption": counts["checkouts"] / REDEMPTIONS,
    }


def main() -> int:
    server_url = normalize_url(os.environ.get("CARBON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    schemas = {name: f"bench_steps_{name}_{uuid.uuid4().hex[:8]}" for name in ("rewards", "ledger", "baseline")}
    urls = {}
    with admin.connect() as conn:
        for name, schema in schemas.items():
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
            urls[name] = url.render_as_string(hide_password=False)
    ledger_port = free_port()
    process = spawn("ledger_svc", ledger_port, urls["ledger"], {})
    try:
        address = f"127.0.0.1:{ledger_port}"
        # Seeding is ingest's (earned points); the Hold/CommitHold pairs then run as rewards would.
        channel = bench_trust_support.channel(address, identities.regional(REGION, "ingest"))
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        accounts = [new_account_number(REGION) for _ in range(ACCOUNTS)]
        stub.PostTransfers(
            ledger_pb2.PostTransfersRequest(
                transfers=[
                    ledger_pb2.Transfer(
                        transfer_id=f"steps-earn-{account}", debit_account="system:issuance", credit_account=account,
                        amount_points=10_000_000, code=ledger_pb2.TRANSFER_CODE_EARN,
                    )
                    for account in accounts
                ]
            ),
            timeout=60,
        )  # fmt: skip
        channel.close()
        rewards_channel = bench_trust_support.channel(address, identities.regional(REGION, "rewards"))
        pairs = ledger_pairs(ledger_pb2_grpc.LedgerServiceStub(rewards_channel), accounts)
        rewards_channel.close()
        steps = redeem_steps(address, urls["rewards"], accounts)
    finally:
        process.terminate()
        process.wait(15)
    try:  # the baseline gets the database (and its connection slots) to itself
        baseline = pgbench_tps(urls["baseline"], CLIENTS)
    finally:
        with admin.connect() as conn:
            for schema in schemas.values():
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    print(f"ledger alone: Hold+CommitHold pairs, {CLIENTS} clients          {pairs['pairs_per_s']:10,.0f} /s")
    print(f"  mean Hold {pairs['hold_ms']:.1f} ms, CommitHold {pairs['commit_ms']:.1f} ms")
    print(f"redeem in-process over that ledger, {CLIENTS} clients       {steps['redemptions_per_s']:10,.0f} /s")
    print(f"  p50 {steps['p50_ms']:.1f} ms; mean per step:")
    total = sum(steps["steps_ms"].values())
    for step, ms in steps["steps_ms"].items():
        print(f"    {step:48} {ms:7.1f} ms  {100 * ms / total:4.0f}%")
    print(
        f"  SQL statements {steps['statements_per_redemption']:.1f}, commits {steps['commits_per_redemption']:.1f}, "
        f"pool checkouts {steps['checkouts_per_redemption']:.1f} per redemption"
    )
    print(f"baseline: pgbench simple-update, {CLIENTS} clients          {baseline:10,.0f} tps")
    figures = {"bench": "rewards_steps", "clients": CLIENTS, "ledger": pairs, "redeem": steps}
    ratios = {
        "baseline_pgbench_tps": round(baseline, 1),
        "ratio": round(steps["redemptions_per_s"] / baseline, 4),
        "ratio_ledger_pairs": round(pairs["pairs_per_s"] / baseline, 4),
    }
    print(json.dumps({**figures, **ratios}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
