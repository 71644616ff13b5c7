"""Benchmark (b): hold+commit pairs through the real gRPC API with 32 concurrent clients (pairs/s, p50, p99), beside
the baseline: the same number of single-row UPDATE transactions (one per pair) at the same concurrency on the same
PostgreSQL in the same run (bench_baseline_support.py). Two ways on the same server: Hold then CommitHold (two calls,
two transactions), and one Hold with commit_to_account (one call, one transaction; ADR 0122). Last line: one JSON
object; `ratio` = two-call pairs/s ÷ baseline transactions/s, `ratio_at_once` the same for one-call pairs (higher is
better).

Then the batched calls (ADR 0132): BATCH_CLIENTS clients each send batches of BATCH_SIZE pairs over accounts of
their own, as one HoldBatch whose items name commit_to_account (`batched_*`, one call per batch), and as a HoldBatch
followed by a CommitHolds of the same holds (`batched_two_call_*`, two calls per batch). A pair is one hold committed.
`ratio_batched` and `ratio_batched_two_call` = those pairs/s ÷ the same baseline. Sizes can be made smaller while
iterating: CARBON_BENCH_HOLD_BATCHES (batches per client, default 8), CARBON_BENCH_HOLD_BATCH_SIZE (default 250)."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import bench_trust_support  # type: ignore[import-not-found,unused-ignore]
from bench_baseline_support import single_row_updates_per_s  # type: ignore[import-not-found,unused-ignore]
from bench_ledger_support import (  # type: ignore[import-not-found,unused-ignore]
    REGION,
    account_number,
    database_url,
    ledger_process,
    percentile,
    private_schema,
)

from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from service_kit import identities

CLIENTS = 32
# Who holds and commits in production (rewards), and who credits the seed (ingest).
REWARDS = identities.regional(REGION, "rewards")
INGEST = identities.regional(REGION, "ingest")
PAIRS_PER_CLIENT = 40
# The server is CPU-bound (one core, the GIL): 16 worker threads ran 20-30% more pairs than 32 (less time handing the
# GIL over). Two processes on one port (SO_REUSEPORT, 8 or 16 threads each) ran no faster on this 2-core machine,
# where PostgreSQL and the clients need the other core.
SERVER_PROCESSES = 1
SERVER_THREADS = 16
# Each client has its own channel (its own connection), so the kernel spreads clients over the processes.
_OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
# Batched calls: few clients (as rewards' or the gateway's few coalescing senders would be), big batches.
BATCH_CLIENTS = 4
BATCHES_PER_CLIENT = int(os.environ.get("CARBON_BENCH_HOLD_BATCHES", "8"))
BATCH_SIZE = int(os.environ.get("CARBON_BENCH_HOLD_BATCH_SIZE", "250"))
# Each batch client's items spread over accounts of its own; each account holds 10 points per pair, both modes.
ACCOUNTS_PER_BATCH_CLIENT = 250


Figures = tuple[float, float, float]


def bench_pairs(url: str) -> tuple[Figures, Figures]:
    with (
        ledger_process(url, max_workers=SERVER_THREADS, processes=SERVER_PROCESSES) as ledger,
        bench_trust_support.channel(ledger.address, INGEST) as channel,  # the seed is earned points
    ):
        ledger_service_pb2_grpc.LedgerServiceStub(channel).PostTransfers(
            pb.PostTransfersRequest(
                transfers=[
                    pb.Transfer(
                        transfer_id=f"seed-{c}",
                        debit_account="system:issuance",
                        credit_account=account_number(c + 1),
                        amount_points=2 * 10 * PAIRS_PER_CLIENT,  # both ways
                        code=pb.TRANSFER_CODE_EARN,
                    )
                    for c in range(CLIENTS)
                ]
            ),
            timeout=60,
        )
        return _timed_pairs(ledger.address, at_once=False), _timed_pairs(ledger.address, at_once=True)


def _batch_account(c: int, i: int) -> str:
    return account_number(10_000 + c * ACCOUNTS_PER_BATCH_CLIENT + i % ACCOUNTS_PER_BATCH_CLIENT)


def bench_batched(url: str) -> tuple[Figures, Figures]:
    """Pairs/s, p50 and p99 (ms per batch) through HoldBatch with commit_to_account, then HoldBatch + CommitHolds."""
    pairs_per_account = -(-BATCHES_PER_CLIENT * BATCH_SIZE // ACCOUNTS_PER_BATCH_CLIENT)
    with (
        ledger_process(url, max_workers=SERVER_THREADS, processes=SERVER_PROCESSES) as ledger,
        bench_trust_support.channel(ledger.address, INGEST) as channel,
    ):
        seed = [
            pb.Transfer(
                transfer_id=f"seed-b-{c}-{i}",
                debit_account="system:issuance",
                credit_account=_batch_account(c, i),
                amount_points=2 * 10 * pairs_per_account,  # both modes
                code=pb.TRANSFER_CODE_EARN,
            )
            for c in range(BATCH_CLIENTS)
            for i in range(ACCOUNTS_PER_BATCH_CLIENT)
        ]
        ledger_service_pb2_grpc.LedgerServiceStub(channel).PostTransfers(
            pb.PostTransfersRequest(transfers=seed), timeout=120
        )
        return _timed_batches(ledger.address, two_calls=False), _timed_batches(ledger.address, two_calls=True)


def _timed_batches(address: str, *, two_calls: bool) -> Figures:
    latencies: list[float] = []
    lock = threading.Lock()
    mode = "two" if two_calls else "once"

    def client(c: int) -> None:
        own: list[float] = []
        with bench_trust_support.channel(address, REWARDS, _OWN_CONNECTION) as own_channel:
            stub = ledger_service_pb2_grpc.LedgerServiceStub(own_channel)
            stub.GetBalance(pb.GetBalanceRequest(account=_batch_account(c, 0)), timeout=30)
            ready.wait()
            for b in range(BATCHES_PER_CLIENT):
                ids = [f"hb-{mode}-{c}-{b}-{i}" for i in range(BATCH_SIZE)]
                accounts = [_batch_account(c, b * BATCH_SIZE + i) for i in range(BATCH_SIZE)]
                credit = "" if two_calls else "system:redemption"
                started = time.perf_counter()
                placed = stub.HoldBatch(
                    pb.HoldBatchRequest(
                        holds=[
                            pb.HoldRequest(hold_id=h, account=a, amount_points=10, commit_to_account=credit)
                            for h, a in zip(ids, accounts, strict=True)
                        ]
                    ),
                    timeout=120,
                )
                answers = list(placed.results)
                if two_calls:
                    committed = stub.CommitHolds(
                        pb.CommitHoldsRequest(
                            commits=[pb.CommitHoldRequest(hold_id=h, credit_account="system:redemption") for h in ids]
                        ),
                        timeout=120,
                    )
                    answers = list(committed.results)
                own.append(time.perf_counter() - started)
                refused = [r.failure_reason for r in answers if r.status != pb.HOLD_ITEM_STATUS_DONE]
                assert not refused, f"pairs refused: {refused[:3]}"
        with lock:
            latencies.extend(own)

    ready = threading.Barrier(BATCH_CLIENTS + 1, timeout=60)
    with ThreadPoolExecutor(BATCH_CLIENTS) as pool:
        running = [pool.submit(client, c) for c in range(BATCH_CLIENTS)]
        ready.wait()
        started = time.perf_counter()
        for future in running:
            future.result()
        elapsed = time.perf_counter() - started
    pairs = len(latencies) * BATCH_SIZE
    return pairs / elapsed, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000


def _timed_pairs(address: str, *, at_once: bool) -> tuple[float, float, float]:
    """Pairs/s, p50 and p99 (ms) of PAIRS_PER_CLIENT pairs per client, sent as two calls or as one."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        own: list[float] = []
        with bench_trust_support.channel(address, REWARDS, _OWN_CONNECTION) as own_channel:
            pairs(c, ledger_service_pb2_grpc.LedgerServiceStub(own_channel), own)
        with lock:
            latencies.extend(own)

    def pairs(c: int, stub: ledger_service_pb2_grpc.LedgerServiceStub, own: list[float]) -> None:
        stub.GetBalance(pb.GetBalanceRequest(account=account_number(c + 1)), timeout=30)  # connected before timing
        ready.wait()
        for p in range(PAIRS_PER_CLIENT):
            started = time.perf_counter()
            hold_id = f"h-{c}-{p}-{'once' if at_once else 'two'}"
            account = account_number(c + 1)
            if at_once:
                request = pb.HoldRequest(
                    hold_id=hold_id, account=account, amount_points=10, commit_to_account="system:redemption"
                )
                stub.Hold(request, timeout=30)
            else:
                stub.Hold(pb.HoldRequest(hold_id=hold_id, account=account, amount_points=10), timeout=30)
                stub.CommitHold(pb.CommitHoldRequest(hold_id=hold_id, credit_account="system:redemption"), timeout=30)
            own.append(time.perf_counter() - started)

    ready = threading.Barrier(CLIENTS + 1, timeout=60)
    with ThreadPoolExecutor(CLIENTS) as pool:
        running = [pool.submit(client, c) for c in range(CLIENTS)]
        ready.wait()
        started = time.perf_counter()
        for future in running:
            future.result()
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000


def main() -> None:
    assert database_url()
    with private_schema("bench_holds") as url:
        updates = single_row_updates_per_s(url, CLIENTS, PAIRS_PER_CLIENT)
        (pairs, p50_ms, p99_ms), (once, once_p50_ms, once_p99_ms) = bench_pairs(url)
        (batched, batch_p50_ms, batch_p99_ms), (batched_two, two_p50_ms, two_p99_ms) = bench_batched(url)
    print(f"psycopg single-row update transactions ({CLIENTS} clients): {updates:,.0f} tx/s")
    print(f"hold+commit pairs ({CLIENTS} clients): {pairs:,.0f} pairs/s, p50 {p50_ms:.1f} ms, p99 {p99_ms:.1f} ms")
    print(
        f"hold+commit in one call ({CLIENTS} clients): {once:,.0f} pairs/s, p50 {once_p50_ms:.1f} ms,"
        f" p99 {once_p99_ms:.1f} ms"
    )
    print(
        f"batched, HoldBatch with commit_to_account ({BATCH_CLIENTS} clients, {BATCH_SIZE} per batch):"
        f" {batched:,.0f} pairs/s, per batch p50 {batch_p50_ms:.1f} ms, p99 {batch_p99_ms:.1f} ms"
    )
    print(
        f"batched, HoldBatch then CommitHolds ({BATCH_CLIENTS} clients, {BATCH_SIZE} per batch):"
        f" {batched_two:,.0f} pairs/s, per batch p50 {two_p50_ms:.1f} ms, p99 {two_p99_ms:.1f} ms"
    )
    figures = {
        "bench": "ledger_holds",
        "pairs_per_s": round(pairs),
        "p50_ms": round(p50_ms, 1),
        "p99_ms": round(p99_ms, 1),
        "at_once_pairs_per_s": round(once),
        "at_once_p50_ms": round(once_p50_ms, 1),
        "at_once_p99_ms": round(once_p99_ms, 1),
        "batch_size": BATCH_SIZE,
        "batched_pairs_per_s": round(batched),
        "batched_batch_p50_ms": round(batch_p50_ms, 1),
        "batched_batch_p99_ms": round(batch_p99_ms, 1),
        "batched_two_call_pairs_per_s": round(batched_two),
        "batched_two_call_batch_p50_ms": round(two_p50_ms, 1),
        "batched_two_call_batch_p99_ms": round(two_p99_ms, 1),
    }
    ratios = {
        "ratio": round(pairs / updates, 3),
        "ratio_at_once": round(once / updates, 3),
        "ratio_batched": round(batched / updates, 3),
        "ratio_batched_two_call": round(batched_two / updates, 3),
    }
    print(json.dumps({**figures, "baseline_update_tx_per_s": round(updates), **ratios}))


if __name__ == "__main__":
    main()
