"""Probe (ADR 0135, addendum): a statement page whose credit side walks a statement index bucketed by seq range,
newest bucket first, beside the page as store/reads.py read it before ADR 0136 and one primary-key select, on a kept
preloaded schema (bench_ledger_earn.py with CARBON_BENCH_KEEP=1) of a ledger before ledger_0013 (the experiment
that led to it; ledger_0013 builds the bucketed index as ix_transfers_credit itself).

The schema must hold both indexes: the account-first ix_transfers_credit, and the bucketed one made by hand (the name
must start with ix_transfers_credit_bucket, so that the probe finds it in the plan and counts the buckets read):
    CREATE INDEX ix_transfers_credit_bucket20 ON transfers ((seq >> 20), credit_account, seq)
        WHERE credit_account <> 'system:expiry';
`setup` (once) gives the schema three accounts to read: one with 10,000 credits spread over the whole journal (the
preloaded earns whose seq is a multiple of count/10,000 are given to it: an UPDATE, so that the kept schema's
books no longer balance and it is to be dropped afterwards; the new row versions sit together at the heap's end,
so that a page of it reads fewer heap pages than a real one, alike for both forms), one preloaded account as it is
(~10 credits over 30 days), and one opened account with none. `cold` adds each form's first read of 60 preloaded
accounts not read before (disjoint samples). Then each query is timed by the server (EXPLAIN ANALYZE,
BUFFERS: its first run and the median of the repeats) and by this client (median wall time of a plain execution on
one open connection, as the reads bench times its calls), and the bucketed walk reports how many buckets it read.

    CARBON_BENCH_DATABASE_URL=... python bench/probe_bucketed_statement.py <schema> [setup] [bits] [cold [stride=N]]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from bench_ledger_support import account_number, database_url  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

PAGE = 50
REPEATS = 30
LONG_ENTRIES = 10_000
LONG = "probe-long-10k"
NONE = "probe-none"
# Cold reads: preloaded accounts above those the bench credits, a different stride for each run of the probe.
COLD_SAMPLES = 60
COLD_FIRST = 200_001
COLD_STRIDE = int(next((arg[len("stride=") :] for arg in sys.argv if arg.startswith("stride=")), "997"))
ORDINARY = account_number(424242)  # preloaded only: the bench credits accounts 1..200,000

_PK = "SELECT balance_points, held_points FROM accounts WHERE account = :a"
_COLUMNS = (
    "seq, transfer_id, code, amount_points, debit_account, credit_account, posted_at_us, reference, co2e_grams,"
    " debit_balance_after, credit_balance_after"
)
# The credit side walks the buckets from the cursor's (or the newest) down to 0, each bucket's entries newest first;
# the outer LIMIT stops the nested loop once the page is full, so a full page reads only the buckets it needs. The
# debit side is today's, on ix_transfers_debit.
_BUCKETED = f"""
SELECT * FROM (
  (SELECT c.* FROM generate_series(
       coalesce(CAST(:before AS bigint) - 1, (SELECT max(seq) FROM transfers)) >> :bits, 0, -1) AS b(bucket)
   CROSS JOIN LATERAL (
     SELECT {_COLUMNS} FROM transfers
     WHERE (seq >> :bits) = b.bucket AND credit_account = :a AND credit_account <> 'system:expiry'
       AND (CAST(:before AS bigint) IS NULL OR seq < :before)
     ORDER BY seq DESC LIMIT :n) c
   LIMIT :n)
  UNION ALL
  (SELECT {_COLUMNS} FROM transfers
   WHERE debit_account = :a AND debit_account <> 'system:issuance' AND credit_account <> :a
     AND (CAST(:before AS bigint) IS NULL OR seq < :before)
   ORDER BY seq DESC LIMIT :n)
) entries ORDER BY seq DESC LIMIT :n
"""


def _main_page(account: str, before: int | None) -> str:
    """The statement's page as store/reads.py read it on ix_transfers_credit (credit_account, seq) until ADR 0136,
    its values written in (the probe's accounts are its own constants)."""
    cursor = "" if before is None else f" AND seq < {int(before)}"
    return f"""
SELECT * FROM (
  (SELECT {_COLUMNS} FROM transfers
   WHERE credit_account = '{account}' AND credit_account <> 'system:expiry'{cursor} ORDER BY seq DESC LIMIT {PAGE})
  UNION ALL
  (SELECT {_COLUMNS} FROM transfers
   WHERE debit_account = '{account}' AND debit_account <> 'system:issuance' AND credit_account <> '{account}'{cursor}
   ORDER BY seq DESC LIMIT {PAGE})
) entries ORDER BY seq DESC LIMIT {PAGE}
"""


def setup(conn: Connection) -> None:
    total = conn.execute(text("SELECT count(*) FROM transfers")).scalar_one()
    stride = max(1, total // LONG_ENTRIES)
    conn.execute(
        text(
            "UPDATE transfers SET credit_account = :a"
            " WHERE seq % :stride = 0 AND seq <= :last AND credit_account <> 'system:expiry'"
        ),
        {"a": LONG, "stride": stride, "last": stride * LONG_ENTRIES},
    )
    for account in (LONG, NONE):
        conn.execute(
            text(
                "INSERT INTO accounts (account, balance_points, held_points, created_at_us) VALUES (:a, 0, 0, 0)"
                " ON CONFLICT (account) DO NOTHING"
            ),
            {"a": account},
        )
    conn.execute(text("ANALYZE transfers, accounts"))


def _explained(conn: Connection, sql: str, values: dict[str, Any]) -> dict[str, Any]:
    plan = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql), values).scalar_one()[0]
    loops = []

    def walk(node: dict[str, Any]) -> None:
        if str(node.get("Index Name", "")).startswith("ix_transfers_credit_bucket"):
            loops.append(node["Actual Loops"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    top = plan["Plan"]
    return {
        "ms": plan["Execution Time"],
        "plan_ms": plan["Planning Time"],
        "hit": top["Shared Hit Blocks"],
        "read": top["Shared Read Blocks"],
        "buckets": loops[0] if loops else None,
    }


def timed(conn: Connection, sql: str, values: dict[str, Any]) -> dict[str, Any]:
    first = _explained(conn, sql, values)
    server = [_explained(conn, sql, values) for _ in range(REPEATS)]
    walls = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        conn.execute(text(sql), values).all()
        walls.append((time.perf_counter() - started) * 1000)
    rows = len(conn.execute(text(sql), values).all())
    return {
        "rows": rows,
        "first_server_ms": round(first["ms"], 3),
        "first_hit_read": [first["hit"], first["read"]],
        "server_ms": round(statistics.median(s["ms"] for s in server), 3),
        "planning_ms": round(statistics.median(s["plan_ms"] for s in server), 3),
        "hit_read": [server[-1]["hit"], server[-1]["read"]],
        "client_ms": round(statistics.median(walls), 3),
        "buckets": first["buckets"],
    }


def cold(conn: Connection, bits: int) -> dict[str, Any]:
    """Each form's first read of preloaded accounts no run has read yet (disjoint samples, so neither form warms
    the other's pages): what a resident's statement costs when its pages are not in shared buffers."""
    samples: dict[str, list[dict[str, Any]]] = {"pk_select": [], "main_index": [], "bucketed": []}
    for k in range(COLD_SAMPLES):
        for offset, form in enumerate(samples):
            account = account_number(COLD_FIRST + (k * 3 + offset) * COLD_STRIDE)
            values = {"a": account, "before": None, "n": PAGE, "bits": bits}
            sql = {"pk_select": _PK, "main_index": _main_page(account, None), "bucketed": _BUCKETED}[form]
            samples[form].append(_explained(conn, sql, values if form != "main_index" else {}))
    return {
        form: {
            "server_ms": round(statistics.median(s["ms"] for s in runs), 3),
            "blocks_read": round(statistics.mean(s["read"] for s in runs), 1),
            "blocks_hit": round(statistics.mean(s["hit"] for s in runs), 1),
        }
        for form, runs in samples.items()
    }


def main() -> None:
    schema = sys.argv[1]
    bits = int(next((arg for arg in sys.argv[2:] if arg.isdigit()), "20"))
    url = make_url(database_url()).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = create_engine(url)
    with engine.begin() as conn:
        if "setup" in sys.argv[2:]:
            setup(conn)
        long_seqs = conn.execute(
            text("SELECT seq FROM transfers WHERE credit_account = :a ORDER BY seq DESC"), {"a": LONG}
        ).scalars()
        middle = list(long_seqs)[LONG_ENTRIES // 2]
    cases = [
        ("10k entries, first page", LONG, None),
        ("10k entries, middle page", LONG, middle),
        ("ordinary preloaded account", ORDINARY, None),
        ("account with no entries", NONE, None),
    ]
    results: dict[str, Any] = {"bits": bits}
    with engine.connect() as conn:
        results["pk_select"] = timed(conn, _PK, {"a": LONG})
        for name, account, before in cases:
            values = {"a": account, "before": before, "n": PAGE, "bits": bits}
            main_page = timed(conn, _main_page(account, before), {})
            bucketed = timed(conn, _BUCKETED, values)
            results[name] = {"main_index": main_page, "bucketed": bucketed}
            print(name, json.dumps(results[name]), flush=True)
        if "cold" in sys.argv[2:]:
            results["cold"] = cold(conn, bits)
            print("cold", json.dumps(results["cold"]), flush=True)
        conn.rollback()
    engine.dispose()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
