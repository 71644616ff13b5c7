"""Closing an account: the points need a disposition, personal data is destroyed, the number and history stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from identity_svc import store
from identity_svc.domain.accounts import AccountState, Ref
from identity_svc.domain.closing import PointsDisposition
from identity_svc.domain.consents import ConsentAction, DataCategory, Question
from identity_svc.server import IdentityServices
from service_kit.errors import AlreadyExists, FailedPrecondition, Unavailable
from tests.identity.identity_helpers import SAMPLE_ID, FakeClock, MemoryLedger, opening

TRANSIT = int(DataCategory.TRANSIT)


def _open_with_consent(services: IdentityServices) -> str:
    account = services.accounts.open_account(opening())[0].account_number
    services.consents.record(
        ConsentAction.GRANT, request_id="g1", account_number=account, category=TRANSIT, channel=1,
        recorded_by="alipay", effective_at=None,
    )  # fmt: skip
    return account


def test_closing_with_points_left_requires_a_disposition(services: IdentityServices, ledger: MemoryLedger) -> None:
    account = _open_with_consent(services)
    ledger.balances[account] = 1200
    for disposition in (PointsDisposition.UNSPECIFIED, PointsDisposition.NONE):
        with pytest.raises(FailedPrecondition) as refused:
            services.closing.close("c1", account, int(disposition), "resident")
        assert refused.value.reason == "POINTS_DISPOSITION_REQUIRED"
    assert services.accounts.get_account(account).state is AccountState.OPEN


def test_closing_donates_the_points_and_destroys_the_personal_data(
    services: IdentityServices, ledger: MemoryLedger, engine: Engine, clock: FakeClock
) -> None:
    account = _open_with_consent(services)
    ledger.balances[account] = 1200
    clock.advance(days=1)
    view, disposed = services.closing.close("c1", account, int(PointsDisposition.DONATE), "resident")
    assert disposed == 1200
    assert ledger.posted == {"identity-close:c1": (account, PointsDisposition.DONATE, 1200)}
    assert view.state is AccountState.CLOSED and view.closed_at == clock.now
    assert (view.masked_name, view.masked_id_number, view.masked_phone_number, list(view.bindings)) == ("", "", "", [])
    with engine.connect() as conn:
        row = conn.execute(select(store.tables.accounts).where(store.tables.accounts.c.account_number == account)).one()
    assert (row.id_hash, row.person_key, row.phone_hash, row.record_blob, row.record_key_id) == (None,) * 5
    assert services.accounts.resolve_many(
        [Ref("id_number", SAMPLE_ID), Ref("binding", "alipay", "2088001"), Ref("phone_number", "13812345678")]
    ) == [None, None, None]
    history, _ = services.consents.history(account, 10, "")
    assert [record.action for record in history] == [ConsentAction.REVOKE, ConsentAction.GRANT]
    [answer] = services.consents.check([Question(account, TRANSIT, clock.now - timedelta(hours=1))])
    assert answer.reason == "ACCOUNT_CLOSED"


def test_a_retried_close_returns_the_first_result_and_moves_nothing_more(
    services: IdentityServices, ledger: MemoryLedger
) -> None:
    account = _open_with_consent(services)
    ledger.balances[account] = 300
    services.closing.close("c1", account, int(PointsDisposition.FORFEIT), "resident")
    view, disposed = services.closing.close("c1", account, int(PointsDisposition.FORFEIT), "resident")
    assert (view.state, disposed, len(ledger.posted)) == (AccountState.CLOSED, 300, 1)
    with pytest.raises(FailedPrecondition) as again:
        services.closing.close("c2", account, int(PointsDisposition.FORFEIT), "resident")
    assert again.value.reason == "ACCOUNT_CLOSED"
    with pytest.raises(AlreadyExists) as reused:
        services.closing.close("c1", account, int(PointsDisposition.DONATE), "resident")
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"


def test_the_person_can_register_again_after_closing(services: IdentityServices) -> None:
    first = services.accounts.open_account(opening("o1"))[0].account_number
    services.closing.close("c1", first, int(PointsDisposition.NONE), "resident")
    second, created = services.accounts.open_account(opening("o2"))
    assert created and second.account_number != first


def test_a_ledger_outage_leaves_the_close_resumable(services: IdentityServices, ledger: MemoryLedger) -> None:
    account = _open_with_consent(services)
    ledger.balances[account] = 50
    real_dispose = ledger.dispose

    def outage(*args: object) -> None:
        raise Unavailable("LEDGER_UNAVAILABLE", "down")

    ledger.dispose = outage  # type: ignore[method-assign, assignment]
    with pytest.raises(Unavailable):
        services.closing.close("c1", account, int(PointsDisposition.DONATE), "resident")
    [answer] = services.consents.check([Question(account, TRANSIT, services.accounts.clock())])
    assert answer.reason == "ACCOUNT_CLOSED"  # closing: nothing scores any more
    ledger.dispose = real_dispose  # type: ignore[method-assign]
    view, disposed = services.closing.close("c1", account, int(PointsDisposition.DONATE), "resident")
    assert (view.state, disposed, ledger.balances[account]) == (AccountState.CLOSED, 50, 0)


def test_held_points_block_closing(services: IdentityServices, ledger: MemoryLedger) -> None:
    account = _open_with_consent(services)
    ledger.held[account] = 100
    with pytest.raises(FailedPrecondition) as refused:
        services.closing.close("c1", account, int(PointsDisposition.DONATE), "resident")
    assert refused.value.reason == "POINTS_HELD"
