"""Benchmark (a): batched earn credits through the real gRPC API (batches of 1,000, 2 clients, as ingest sends them)
against the baseline: raw COPY of the same number of rows into one plain keyed table, a commit per batch, best of
3 on fresh tables, on the same PostgreSQL in the same run (bench_baseline_support.py). Last line: one JSON object;
`ratio` = ledger transfers/s (two server processes on one port) ÷ baseline rows/s (higher is better).

Transfer ids are the ids ingest sends (ingest_svc/domain/event_rows.py): the acceptance time, then a digest of the
event (ADR 0128); each batch's ids carry the time the batch was built.

Preload mode (issue 19 item 4): CARBON_BENCH_PRELOAD=N first writes N earns into one schema, set-based SQL that
writes what the credit path writes for an earn (see `preload`: ingest's ids, N/10 accounts, 30 earning days, sealed
blocks; with CARBON_BENCH_KEEP=1 the preloaded schema is kept and reused by the next run, which then also holds the
credits earlier runs measured; with CARBON_BENCH_LOCK=<flock file> only the measurements take the machine's benchmark
lock: bench_preload_support.py), then
measures the same credits on an empty schema and on the preloaded one, alternately, four times each. It reports
`ratio_empty`, `ratio` (preloaded) and `preloaded_vs_empty` (their quotient: 1.0 is flat; the issue asks for >= 0.9);
the one-process figure is left out to keep the run short. Each round also reports what it cost the server (WAL,
full-page images, dirty buffers written by backends, blocks read per credit by relation: bench_server_counters.py),
the figures that showed where a preloaded credit's time goes (ADR 0135).

In those rounds a credit finds its lot there already, from the second round on (the rounds credit the same accounts
every run, and all of them have had today's lot since). Each run therefore also measures a new earning day: the same
credits with the ledger's clock moved (CARBON_CLOCK_OFFSET) to the day after the latest day any lot of the preloaded
schema was earned on, so that every credit of those rounds creates its account's lot for that day, as the first
credit of an account's day does (`new_day_preloaded_vs_empty`; ADR 0137). A kept schema's next run moves on a day:
its "today" rounds credit the schema's latest lot day (the last run's new day, whose lots the same accounts have).
Before measuring, the run moves recent lots as the ledger's move_lots job does at the start of the new day (every day
before the schema's latest into `lots`), so `recent_lots` holds the two days it holds in service, not one more per
run, and vacuums it as autovacuum would (off on this machine's server); the move's lots and seconds are reported
(`moved_lots`, `move_s`).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import bench_preload_support as preload_support  # type: ignore[import-not-found,unused-ignore]
import bench_server_counters as counters  # type: ignore[import-not-found,unused-ignore]
import bench_trust_support  # type: ignore[import-not-found,unused-ignore]
from bench_baseline_support import copy_rows_per_s  # type: ignore[import-not-found,unused-ignore]
from bench_ledger_support import (  # type: ignore[import-not-found,unused-ignore]
    REGION,
    account_number,
    ledger_process,
    private_schema,
)
from sqlalchemy import create_engine, text

from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from ingest_svc.domain.event_rows import transfer_id_for
from ledger_svc.domain.time import DEFAULT_VALIDITY_MONTHS, day_of, lot_expiry_us, to_us
from ledger_svc.service import lot_mover
from ledger_svc.service.context import LedgerContext
from service_kit import db, identities

BATCH = 1000
BATCHES = 40
CLIENTS = 2
# The ledger as deployed scales with processes sharing a port (SO_REUSEPORT, ARCHITECTURE.md), one per core here;
# one process is measured in the same run beside it.
SERVER_PROCESSES = 2
USERS = 200_000
PRELOAD = int(os.environ.get("CARBON_BENCH_PRELOAD", "0"))
# Rounds of each kind in preload mode. A round is ~2 s of credits, and on this machine two rounds of the same kind in
# one run differed by up to 30%: four of each make a run's quotient steadier. Each round credits accounts of its own
# (42,000 of USERS), so every new-day round creates its lots.
PRELOADED_ROUNDS = 4


def _batch(index: int) -> pb.PostTransfersRequest:
    accepted_at = datetime.now(UTC)
    return pb.PostTransfersRequest(
        transfers=[
            pb.Transfer(
                transfer_id=transfer_id_for("bench", f"{index}-{item}", accepted_at),
                debit_account="system:issuance",
                credit_account=account_number((index * BATCH + item) * 7919 % USERS + 1),
                amount_points=10,
                code=pb.TRANSFER_CODE_EARN,
                reference=f"event-{index}-{item}",
                co2e_grams=515,
            )
            for item in range(BATCH)
        ]
    )


def bench_ledger(url: str, processes: int, first_batch: int = 0, clock_offset: str = "") -> float:
    requests = [_batch(index) for index in range(first_batch, first_batch + BATCHES + 2)]
    with ledger_process(url, processes=processes, clock_offset=clock_offset) as ledger:
        # One channel (one connection) per client: with several server processes on the port (SO_REUSEPORT), the
        # kernel spreads connections, not calls.
        options = [("grpc.use_local_subchannel_pool", 1)]
        ingest = identities.regional(REGION, "ingest")  # who credits earned points in production
        channels = [bench_trust_support.channel(ledger.address, ingest, options) for _ in range(CLIENTS)]
        stubs = [ledger_service_pb2_grpc.LedgerServiceStub(channel) for channel in channels]
        for stub, warmup in zip(stubs, requests[:2], strict=True):
            stub.PostTransfers(warmup, timeout=60)
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            responses = list(
                pool.map(
                    lambda indexed: stubs[indexed[0] % CLIENTS].PostTransfers(indexed[1], timeout=120),
                    enumerate(requests[2:]),
                )
            )
        elapsed = time.perf_counter() - started
        for channel in channels:
            channel.close()
    posted = sum(
        1 for response in responses for result in response.results if result.status == pb.TRANSFER_STATUS_POSTED
    )
    assert posted == BATCH * BATCHES, posted
    return posted / elapsed


PRELOAD_DAYS = 30


def preload(url: str, count: int) -> float:
    """`count` earns as ingest would have sent them over 30 days on count/10 accounts (the same account numbers the
    measured credits use), set-based as the credit path writes them, batches sealed into blocks
    (bench_preload_support.py). Returns the seconds it took."""
    accounts = [account_number(n + 1) for n in range(max(1, count // 10))]
    return preload_support.preload_earns(url, count, accounts, to_us(datetime.now(UTC)), PRELOAD_DAYS)


def counted_round(url: str, first_batch: int, clock_offset: str = "") -> tuple[float, dict[str, object]]:
    """One measured round and what it cost the server (bench_server_counters.py), per credit it posted (the two
    warm-up batches included)."""
    before = counters.read(url)
    rate = bench_ledger(url, processes=SERVER_PROCESSES, first_batch=first_batch, clock_offset=clock_offset)
    return rate, counters.per_round(before, counters.read(url), (BATCHES + 2) * BATCH)


# The day of the lot that expires last: its earned day is the latest (a lot expires on its earned day some months on).
# Both lot tables (ADR 0137): the lots of the latest days are recent ones.
_LATEST_LOT_DAY = """
    SELECT earned_on FROM (
        (SELECT earned_on, expires_at_us, lot_id FROM lots ORDER BY expires_at_us DESC, lot_id DESC LIMIT 1)
        UNION ALL
        (SELECT earned_on, expires_at_us, lot_id FROM recent_lots ORDER BY expires_at_us DESC, lot_id DESC LIMIT 1)
    ) latest ORDER BY expires_at_us DESC, lot_id DESC LIMIT 1
"""
_LOTS_OF_DAY = """
    SELECT (SELECT count(*) FROM lots WHERE earned_on = :day AND expires_at_us = :expires)
         + (SELECT count(*) FROM recent_lots WHERE earned_on = :day AND expires_at_us = :expires)
"""
# What recent_lots holds after a run: the days it spans and its lots (the move before the rounds leaves the schema's
# latest day; the new-day rounds add theirs).
_RECENT_SPAN = "SELECT min(earned_on), max(earned_on), count(DISTINCT earned_on), count(*) FROM recent_lots"


def new_day_offset_days(url: str) -> int:
    """Days from today (China) to the day after the latest day a lot of the schema was earned on: a day no account
    has a lot for. One descent of ix_lots_expiring."""
    engine = create_engine(url)
    with engine.connect() as conn:
        latest = conn.execute(text(_LATEST_LOT_DAY)).scalar()
    engine.dispose()
    today = day_of(to_us(datetime.now(UTC)))
    return max(1, (latest - today).days + 1) if latest is not None else 1


def _offset(days: int) -> str:
    return f"+{days}d" if days else ""


def move_as_the_new_day_starts(url: str, new_day_offset: int) -> tuple[int, float]:
    """Runs the move_lots job's move as the ledger's scheduler does at the start of the new day: every recent lot
    earned before the day before it goes to `lots` (ledger_svc/service/lot_mover.py). Returns the lots moved and the
    seconds it took. Without it each run would leave one more day in recent_lots than the ledger in service keeps."""
    new_day = day_of(to_us(datetime.now(UTC))) + timedelta(days=new_day_offset)
    engine = db.make_engine(url)
    ledger = LedgerContext(engine, REGION)
    started = time.perf_counter()
    outcome = lot_mover.move_lots(ledger, lot_mover.closed_through(new_day))
    # What autovacuum does in service soon after the move deletes a day from recent_lots; this machine's server runs
    # with autovacuum off (conf.d/90-ci.conf), where the dead rows would pile up run after run and the table's
    # account-first index would be read as if it held every day ever moved.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) recent_lots"))
    elapsed = time.perf_counter() - started
    engine.dispose()
    return outcome.lots_moved, elapsed


def lots_earned_on(url: str, offset_days: int) -> int:
    """How many lots were earned on the day `offset_days` after today (China): what the new-day rounds created."""
    day = day_of(to_us(datetime.now(UTC))) + timedelta(days=offset_days)
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(
            text(_LOTS_OF_DAY), {"day": day, "expires": lot_expiry_us(day, DEFAULT_VALIDITY_MONTHS)}
        ).scalar_one()
    engine.dispose()
    return int(count)


def recent_span(url: str) -> tuple[object, ...]:
    engine = create_engine(url)
    with engine.connect() as conn:
        span = tuple(conn.execute(text(_RECENT_SPAN)).one())
    engine.dispose()
    return span


def preloaded_main() -> None:
    """Empty and preloaded schemas measured alternately, PRELOADED_ROUNDS times each, so that the machine's drift hits
    both; each round of today's credits followed by one of the same credits on a new earning day (every credit
    creates a lot). Each round also reports what it cost the server: WAL, full-page images, backend writes and block
    reads per credit."""
    with (
        private_schema("bench_earn") as empty_url,
        preload_support.schema("bench_earn", str(PRELOAD)) as (full_url, preloaded),
    ):
        preload_s = 0.0 if preloaded else preload(full_url, PRELOAD)
        preload_support.mark_preloaded(full_url)
        print(f"preloaded {PRELOAD:,} earns in {preload_s:.0f} s" + (" (a previous run)" if preloaded else ""))
        new_day = new_day_offset_days(full_url)
        today_offset, offset = _offset(new_day - 1), _offset(new_day)
        print(f"today's rounds earn on today + {new_day - 1} days, new-day rounds on today + {new_day} (China)")
        moved, move_s = move_as_the_new_day_starts(full_url, new_day)
        print(f"moved {moved:,} recent lots into lots in {move_s:.1f} s, as move_lots does when the new day starts")
        rates: dict[tuple[str, str], list[float]] = {}
        costs: dict[tuple[str, str], list[dict[str, object]]] = {}
        with preload_support.measuring():
            raw, raws = copy_rows_per_s(empty_url, BATCH * BATCHES, BATCH)
            for round_no in range(PRELOADED_ROUNDS):
                first = round_no * (BATCHES + 2)
                for day, clock_offset in (("today", today_offset), ("new_day", offset)):
                    for schema, url in (("empty", empty_url), ("preloaded", full_url)):
                        rate, cost = counted_round(url, first, clock_offset)
                        rates.setdefault((day, schema), []).append(rate)
                        costs.setdefault((day, schema), []).append(cost)
        created = lots_earned_on(full_url, new_day)
        recent = recent_span(full_url)
    print(f"recent_lots after the run: days {recent[0]} to {recent[1]}, {recent[2]} distinct, {recent[3]:,} lots")
    for (day, schema), round_costs in costs.items():
        for round_no, cost in enumerate(round_costs):
            print(f"{day} round {round_no + 1}, {schema}: {json.dumps(cost)}")
    mean = {key: sum(values) / len(values) for key, values in rates.items()}
    print(f"baseline, raw COPY: {raw:,.0f} rows/s (best of {', '.join(f'{r:,.0f}' for r in raws)})")
    for day in ("today", "new_day"):
        rounds = ", ".join(
            f"{e:,.0f} / {f:,.0f}" for e, f in zip(rates[(day, "empty")], rates[(day, "preloaded")], strict=True)
        )
        print(f"ledger PostTransfers ({day}), transfers/s per round, empty / after {PRELOAD:,} preloaded: {rounds}")
    credits = PRELOADED_ROUNDS * (BATCHES + 2) * BATCH
    print(f"new-day rounds created {created:,} lots in the preloaded schema (of {credits:,} credits)")
    empty, ours = mean[("today", "empty")], mean[("today", "preloaded")]
    new_empty, new_ours = mean[("new_day", "empty")], mean[("new_day", "preloaded")]
    print(
        json.dumps(
            {
                "bench": "ledger_earn",
                "preloaded_transfers": PRELOAD,
                "preload_s": round(preload_s),
                "ledger_transfers_per_s": round(ours),
                "empty_transfers_per_s": round(empty),
                "rounds_empty": [round(rate) for rate in rates[("today", "empty")]],
                "rounds_preloaded": [round(rate) for rate in rates[("today", "preloaded")]],
                "baseline_copy_rows_per_s": round(raw),
                "server_costs_empty": costs[("today", "empty")],
                "server_costs_preloaded": costs[("today", "preloaded")],
                "ratio_empty": round(empty / raw, 3),
                "preloaded_vs_empty": round(ours / empty, 3),
                "ratio": round(ours / raw, 3),
                "new_day_offset_days": new_day,
                "moved_lots": moved,
                "move_s": round(move_s, 1),
                "new_day_lots_created": created,
                "recent_lots_days": recent[2],
                "recent_lots_rows": recent[3],
                "new_day_rounds_empty": [round(rate) for rate in rates[("new_day", "empty")]],
                "new_day_rounds_preloaded": [round(rate) for rate in rates[("new_day", "preloaded")]],
                "new_day_server_costs_empty": costs[("new_day", "empty")],
                "new_day_server_costs_preloaded": costs[("new_day", "preloaded")],
                "new_day_preloaded_vs_empty": round(new_ours / new_empty, 3),
            }
        )
    )


def main() -> None:
    if PRELOAD:
        preloaded_main()
        return
    with private_schema("bench_earn") as url:
        raw, raws = copy_rows_per_s(url, BATCH * BATCHES, BATCH)
        one_process = bench_ledger(url, processes=1)
    with private_schema("bench_earn") as url:
        ours = bench_ledger(url, processes=SERVER_PROCESSES)
    print(f"baseline, raw COPY: {raw:,.0f} rows/s (best of {', '.join(f'{r:,.0f}' for r in raws)})")
    print(
        f"ledger PostTransfers (gRPC, batches of {BATCH}, {CLIENTS} clients), 1 process: {one_process:,.0f} transfers/s"
    )
    print(
        f"ledger PostTransfers (gRPC, batches of {BATCH}, {CLIENTS} clients), "
        f"{SERVER_PROCESSES} processes on one port: {ours:,.0f} transfers/s"
    )
    print(
        json.dumps(
            {
                "bench": "ledger_earn",
                "ledger_transfers_per_s": round(ours),
                "server_processes": SERVER_PROCESSES,
                "one_process_transfers_per_s": round(one_process),
                "baseline_copy_rows_per_s": round(raw),
                "ratio_one_process": round(one_process / raw, 3),
                "ratio": round(ours / raw, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
