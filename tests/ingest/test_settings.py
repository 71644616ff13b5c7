"""Ingest's own settings: the defaults the service has always had, each variable read by its name, and a wrong value
refused naming its variable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ingest_svc.settings import IngestSettings
from service_kit.settings import SettingsError


def test_without_variables_ingest_keeps_its_defaults() -> None:
    own = IngestSettings.from_env({"CARBON_REGION": "110000"})

    assert (own.identity_address, own.ledger_address, own.crash_at) == ("", "", "")
    assert (own.rpc_deadline_s, own.key_grace, own.resume_on_start) == (10.0, timedelta(hours=24), True)
    assert own.redis_key_prefix == "carbon:ingest:110000:"


def test_each_variable_is_read_by_its_name() -> None:
    own = IngestSettings.from_env(
        {
            "CARBON_IDENTITY_ADDRESS": "identity:50051",
            "CARBON_LEDGER_ADDRESS": "ledger:50051",
            "CARBON_INGEST_RPC_DEADLINE_MS": "300",
            "CARBON_INGEST_KEY_GRACE_HOURS": "0",
            "CARBON_INGEST_REDIS_PREFIX": "test:",
            "CARBON_INGEST_RESUME_ON_START": "0",
            "CARBON_TEST_CRASH_AT": "after_commit",
        }
    )

    assert (own.identity_address, own.ledger_address) == ("identity:50051", "ledger:50051")
    assert (own.rpc_deadline_s, own.key_grace, own.redis_key_prefix) == (0.3, timedelta(0), "test:")
    assert (own.resume_on_start, own.crash_at) == (False, "after_commit")


def test_a_deadline_that_is_not_a_number_is_refused_naming_its_variable() -> None:
    with pytest.raises(SettingsError, match="CARBON_INGEST_RPC_DEADLINE_MS"):
        IngestSettings.from_env({"CARBON_INGEST_RPC_DEADLINE_MS": "ten seconds"})
