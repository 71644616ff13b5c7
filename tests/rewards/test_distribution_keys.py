"""The Citus path (docs/scale-plan.md, section 3): every statement rewards sends on its hot paths on PostgreSQL
(redeeming, a retried redemption, using and cancelling a voucher, donating, listing an account's vouchers) names the
distribution column of each distributed rewards table it touches, except the statements the plan lists as work to
do before the move, each for its stated reason."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from rewards_svc.server import RewardsServices, build_services
from service_kit import db
from service_kit.settings import Settings
from tests.distribution_keys import captured_statements, distributed_tables, filters_by, touched, unkeyed
from tests.rewards.conftest import ManualClock, funded
from tests.rewards.rewards_fake_ledger import FakeLedger

pytestmark = pytest.mark.postgres

# What the plan says these statements filter by today instead, and the change that makes them name their key.
PLANNED = {
    "redemptions": [
        ("request_id", "the idempotency probe: UNIQUE(request_id) becomes (account_number, request_id)"),
        ("redemption_id", "the state machine's steps and the voucher joins by redemption id: they name the account"),
    ],
    "vouchers": [
        ("code", "using or cancelling starts from the code: a voucher_codes table distributed by code"),
        ("redemption_id", "a redemption's vouchers by redemption id: the read names the account too"),
    ],
    "donations": [
        ("request_id", "the idempotency probe: UNIQUE(request_id) becomes (account_number, request_id)"),
        ("donation_id", "a donation's steps by donation id: they name the account, as redemptions' do"),
    ],
}


def _planned(table: str, statement: str) -> bool:
    return any(filters_by(statement, table, column) for column, _reason in PLANNED.get(table, []))


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = db.make_engine(postgres_url)
    db.migrate("rewards_svc", engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_service(pg_engine: Engine, ledger: FakeLedger, clock: ManualClock) -> RewardsServices:
    settings = Settings(service="rewards_svc", region_code="330000")
    return build_services(settings, pg_engine, ledger=ledger, clock=clock)


def _hot_paths(service: RewardsServices, ledger: FakeLedger) -> None:
    zhang, li = funded(ledger, "330000", 20_000), funded(ledger, "330000", 20_000)
    used = service.redemptions.redeem("r-1", zhang, "museum-free-reservation", 1, "330000").vouchers[0].code
    service.redemptions.redeem("r-1", zhang, "museum-free-reservation", 1, "330000")  # a retry: the first answer
    service.vouchers.use_voucher("use-1", used, "museum-7")
    cancelled = service.redemptions.redeem("r-2", li, "transit-topup", 2, "330000").vouchers[0].code
    service.vouchers.cancel_voucher("cancel-1", cancelled, "moved away")
    service.charity.donate("d-1", li, "trees", 3000)
    service.vouchers.list_vouchers(zhang, [], 10, 0)


def test_the_hot_statements_name_their_distribution_keys(
    pg_service: RewardsServices, pg_engine: Engine, ledger: FakeLedger
) -> None:
    tables = distributed_tables("rewards")
    with captured_statements(pg_engine) as statements:
        _hot_paths(pg_service, ledger)
    assert {"redemptions", "vouchers", "donations", "charity_impact"} <= touched(statements, tables)
    unexpected = [found for found in unkeyed(statements, tables) if not _planned(found.table, found.statement)]
    assert not unexpected, "statements that would fan out to every shard:\n" + "\n".join(
        f"{found.table} (by {found.column}): {found.statement}" for found in unexpected
    )
