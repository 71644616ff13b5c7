"""The Citus path (docs/scale-plan.md, section 3): every statement ingest sends while events are submitted (first
submissions, a resubmission, a rejected event) names the distribution column of each distributed ingest table it
touches, except the statements the plan lists as work to do before the move, each for its stated reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.distribution_keys import captured_statements, distributed_tables, filters_by, touched, unkeyed
from tests.ingest.ingest_harness import Harness, make_harness

pytestmark = pytest.mark.postgres

# What the plan says these statements filter by today instead, and the change that makes them name their key.
PLANNED = {
    "ingest_events": (
        "event_id",
        "the dedupe probe by (partner, event id): the primary key gains transfer_id, computed from the key first",
    ),
}


@pytest.fixture
def pg_harness(postgres_url: str, tmp_path: Path) -> Iterator[Harness]:
    yield from make_harness(postgres_url, data_dir=tmp_path)


def test_submitting_events_names_the_distribution_keys(pg_harness: Harness) -> None:
    tables = distributed_tables("ingest")
    pg_harness.register()
    accounts = [pg_harness.open_account() for _ in range(3)]
    first = [pg_harness.event(account, event_id=f"first-{n}") for n, account in enumerate(accounts)]
    # Every engine's statements (ingest's, and the ledger's in the same database): only ingest's tables are checked.
    with captured_statements(Engine) as statements:
        assert {r.outcome for r in pg_harness.submit(first)} == {1}  # ACCEPTED
        pg_harness.submit([*first[:1], pg_harness.event(accounts[0], event_id="second")])
        pg_harness.submit([pg_harness.event(accounts[1], behaviour="no_such_behaviour", event_id="bad")])
    assert {"ingest_events", "ingest_cap_counters", "ingest_credit_batches"} <= touched(statements, tables)
    unexpected = [
        found
        for found in unkeyed(statements, tables)
        if not (found.table in PLANNED and filters_by(found.statement, found.table, PLANNED[found.table][0]))
    ]
    assert not unexpected, "statements that would fan out to every shard:\n" + "\n".join(
        f"{found.table} (by {found.column}): {found.statement}" for found in unexpected
    )
