"""The recovery loop works through a backlog in batches, driven in parallel lanes (ADR 0621): every transfer recorded
while the source region was down is finished once, concurrent ones sharing accounts included."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from carbon.gateway.v1 import gateway_service_pb2 as gw
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, wait_for

COMMITTED = gw.CROSS_REGION_TRANSFER_STATE_COMMITTED


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    federation = Federation(tmp_path, ["330000", "110000"], ledgers_in_process=True)
    yield federation
    federation.close()


def test_a_backlog_recorded_while_the_source_was_down_is_finished_once_in_batches(fed: Federation) -> None:
    pairs = [fed.open_person(["330000", "110000"]) for _ in range(3)]
    for source, _ in pairs:
        fed.earn("330000", source, 1_000)
    # Batches smaller than the backlog, so the loop goes on from a full batch to the next.
    running = start_inprocess_gateway(
        fed,
        CARBON_GATEWAY_RECOVERY_INTERVAL_MS="50",
        CARBON_GATEWAY_RETRY_MAX_MS="200",
        CARBON_GATEWAY_RECOVERY_BATCH="4",
    )
    try:
        fed.kill_ledger("330000")
        orders = [(f"b{n}", pairs[n % len(pairs)][0], pairs[n % len(pairs)][1], 10 + n) for n in range(12)]
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda order: fed.transfer(*order).state, orders))
        assert set(answers) == {gw.CROSS_REGION_TRANSFER_STATE_CREATED}
        fed.start_ledger("330000")

        def all_committed() -> bool:
            return all(fed.get_transfer(order[0]).state == COMMITTED for order in orders)

        wait_for(all_committed, timeout_s=60, what="recovery to finish the backlog")
    finally:
        running.stop()
    moved = {source: 0 for source, _ in pairs}
    for _, source, _, points in orders:
        moved[source] += points
    for source, target in pairs:
        assert fed.balance("330000", source).total_points == 1_000 - moved[source]
        assert fed.balance("110000", target).total_points == moved[source]
        assert fed.balance("330000", source).held_points == 0
    assert fed.clearing_sum() == 0
    assert fed.conserved("330000") and fed.conserved("110000")
