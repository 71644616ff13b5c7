"""PostgreSQL stopped and started again under running services (issue 14, defect 4): while it is down every call
that needs it answers UNAVAILABLE with RetryInfo and the reason DATABASE_UNAVAILABLE, never INTERNAL; once it is back
the same services answer OK without a restart (the pool drops the dead connections), and the books agree."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from service_kit.failures import DATABASE_UNAVAILABLE
from service_kit.status import error_details
from tests.faults.servers import PrivatePostgres
from tests.ingest.ingest_harness import Harness, make_harness

pytestmark = pytest.mark.faults


@pytest.fixture
def harness(private_postgres: PrivatePostgres, tmp_path: Path, real_migrations: None) -> Iterator[Harness]:
    """Ingest and the ledger on the private PostgreSQL (identity is the in-memory fake: no database)."""
    yield from make_harness(private_postgres.url(), data_dir=tmp_path)


def unavailable(call: Callable[[], object]) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    details = error_details(raised.value)
    assert details.code == grpc.StatusCode.UNAVAILABLE, details
    assert details.reason == DATABASE_UNAVAILABLE, details
    assert details.retry_delay is not None and details.retry_delay.total_seconds() > 0, details


@pytest.mark.parametrize("mode", ["fast", "immediate"])  # a restart, and a crash
def test_a_database_restart_is_unavailable_then_ok(
    harness: Harness, private_postgres: PrivatePostgres, mode: str
) -> None:
    harness.register()
    account = harness.open_account()
    before = [harness.event(account) for _ in range(3)]
    assert [r.outcome for r in harness.submit(before)] == [pb.EVENT_OUTCOME_ACCEPTED] * 3
    earned = harness.ledger.balance(account)
    assert earned > 0

    private_postgres.stop(mode)
    during = [harness.event(account) for _ in range(2)]
    for _ in range(3):  # every call, not only the first one that meets a dead pooled connection
        unavailable(lambda: harness.stub.SubmitEvents(harness.request(during, "during")))
        unavailable(lambda: harness.ledger.stub.GetBalance(lpb.GetBalanceRequest(account=account)))
        unavailable(lambda: harness.ledger.stub.ListStatementEntries(lpb.ListStatementEntriesRequest(account=account)))
        unavailable(lambda: harness.stub.GetPartner(pb.GetPartnerRequest(partner_id=harness.partner_id)))
    stream = iter([pb.StreamEventsRequest(batch=harness.request(during, "during"))])
    with pytest.raises(grpc.RpcError) as ended:
        harness.stub.StreamEvents(stream)
    report = error_details(ended.value)
    assert (report.code, report.reason) == (grpc.StatusCode.UNAVAILABLE, DATABASE_UNAVAILABLE)
    assert (report.metadata["batches_committed"], report.metadata["failed_batch_index"]) == ("0", "0")

    private_postgres.start()
    results = harness.submit(during)
    assert [r.outcome for r in results] == [pb.EVENT_OUTCOME_ACCEPTED] * 2
    assert harness.ledger.balance(account) == earned + sum(r.points for r in results)
    statement = harness.ledger.stub.ListStatementEntries(lpb.ListStatementEntriesRequest(account=account))
    assert len(statement.entries) == 5
    assert [r.outcome for r in harness.submit(during)] == [pb.EVENT_OUTCOME_DUPLICATE] * 2
    harness.ledger.assert_conserved()
