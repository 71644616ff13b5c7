"""Activity fingerprints: the same activity hashes alike whoever reports it, other activities do not, the key is
chosen by the activity's day, and every behaviour of the catalog has a reviewed definition."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime

import pytest

from ingest_svc.domain.catalog import CatalogError, load_catalog, parse_catalog
from ingest_svc.domain.fingerprints import (
    ActivityFields,
    FingerprintError,
    FingerprintKeys,
    FingerprintSpec,
    KeyedHash,
    activity_text,
    fingerprint,
    fingerprint_columns,
)

KEYS = FingerprintKeys.parse("k1:" + "11" * 32 + ",k2:" + "22" * 32 + "@2026-03-02")
TRANSIT = load_catalog().fingerprints["transit_trip"]
AT = datetime(2026, 3, 1, 4, 0, 30, tzinfo=UTC)


def _trip(account: str = "1100000000000017", evidence: str = "bjcard:trip-X", at: datetime = AT) -> ActivityFields:
    return ActivityFields("transit_trip", evidence, account, date(2026, 3, 1), at, "")


def test_one_trip_hashes_alike_from_two_regions_accounts() -> None:
    # The same person's accounts differ between regions: an evidence fingerprint does not read the account.
    in_beijing, in_zhejiang = _trip("1100000000000017"), _trip("3300000000000015")
    assert fingerprint(TRANSIT, KEYS, in_beijing) == fingerprint(TRANSIT, KEYS, in_zhejiang)


def test_another_trip_hashes_differently() -> None:
    assert fingerprint(TRANSIT, KEYS, _trip()).digest != fingerprint(TRANSIT, KEYS, _trip(evidence="bjcard:Y")).digest


def test_without_evidence_the_fallback_is_the_account_and_minute() -> None:
    same_minute = fingerprint(TRANSIT, KEYS, _trip(evidence="", at=AT.replace(second=59)))
    assert fingerprint(TRANSIT, KEYS, _trip(evidence="")) == same_minute
    assert fingerprint(TRANSIT, KEYS, _trip(evidence="", at=AT.replace(minute=1))).digest != same_minute.digest
    assert "account=1100000000000017" in activity_text(TRANSIT, _trip(evidence=""))


def test_the_hashed_text_is_pinned_as_every_region_hashes_it() -> None:
    # Regions upgrade one at a time: a change of the text would claim one activity twice (ADR 0412).
    supervisor = load_catalog().fingerprints["sorting_supervisor_day"]
    day_only = ActivityFields("sorting_supervisor_day", "", "1100000000000017", date(2026, 3, 1), AT, "")
    assert activity_text(TRANSIT, _trip()) == "transit_trip\x1f2026-03-01\x1fevidence_ref=bjcard:trip-X"
    assert activity_text(TRANSIT, _trip(evidence="")) == (
        "transit_trip\x1f2026-03-01\x1faccount=1100000000000017\x1foccurred_minute=2026-03-01T04:00"
    )
    assert activity_text(supervisor, day_only) == (
        "sorting_supervisor_day\x1f2026-03-01\x1faccount=1100000000000017\x1fday=2026-03-01"
    )
    expected = hmac.new(b"\x11" * 32, activity_text(TRANSIT, _trip()).encode(), hashlib.sha256).digest()
    assert fingerprint(TRANSIT, KEYS, _trip()).digest == expected


@pytest.mark.parametrize("key_bytes", [32, 64, 65, 100])
def test_the_prepared_key_hashes_as_hmac_does(key_bytes: int) -> None:
    # Keys longer than SHA-256's block are hashed first (RFC 2104); a difference would claim one activity twice.
    secret = bytes(range(key_bytes))
    for text in (b"", b"transit_trip\x1f2026-03-01\x1fevidence_ref=bjcard:trip-X", b"x" * 200):
        assert KeyedHash(secret).digest(text) == hmac.digest(secret, text, "sha256")


def test_a_batchs_columns_are_each_activitys_fingerprint_in_order() -> None:
    later = ActivityFields("transit_trip", "bjcard:trip-Y", "1100000000000017", date(2026, 3, 2), AT, "")
    activities = [_trip(), _trip(evidence=""), later, _trip(evidence="bjcard:Z")]
    columns = fingerprint_columns({"transit_trip": TRANSIT}, KEYS, activities)
    singles = [fingerprint(TRANSIT, KEYS, activity) for activity in activities]
    assert columns.digests == [f.digest for f in singles]
    assert columns.key_ids == ["k1", "k1", "k2", "k1"]
    assert columns.days == [f.day.isoformat() for f in singles]


def test_the_key_is_chosen_by_the_activitys_day() -> None:
    assert fingerprint(TRANSIT, KEYS, _trip()).key_id == "k1"
    later = ActivityFields("transit_trip", "bjcard:trip-X", "1100000000000017", date(2026, 3, 2), AT, "")
    assert fingerprint(TRANSIT, KEYS, later).key_id == "k2"


def test_no_raw_field_is_in_the_fingerprint() -> None:
    print_ = fingerprint(TRANSIT, KEYS, _trip())
    assert len(print_.digest) == 32 and b"bjcard" not in print_.digest


@pytest.mark.parametrize(
    "text", ["", "k1:abcd", "k1:" + "zz" * 32, "k1:" + "11" * 32 + "@March", ("k1:" + "11" * 32 + "@2026-01-01,") * 2]
)
def test_malformed_keys_are_refused_without_showing_them(text: str) -> None:
    with pytest.raises(FingerprintError) as caught:
        FingerprintKeys.parse(text)
    assert "11" * 32 not in str(caught.value)


def test_every_catalog_behaviour_has_a_reviewed_fingerprint() -> None:
    catalog = load_catalog()
    assert {b.code for b in catalog.behaviours} == set(catalog.fingerprints)
    assert catalog.fingerprints["sorting_supervisor_day"] == FingerprintSpec(("account", "day"))


def test_a_behaviour_without_a_fingerprint_or_with_an_evidence_one_lacking_a_fallback_is_refused() -> None:
    entry = {
        "code": "x", "name_en": "x", "name_zh": "x", "unit": "trip", "category": "TRANSIT",
        "versions": [{"effective_from": "2023-01-01T00:00:00+08:00",
                      "co2e": {"grams_per_unit": "1", "unit": "g", "source": "s"}}],
    }  # fmt: skip
    with pytest.raises(CatalogError, match="fingerprint"):
        parse_catalog({"behaviours": [entry]})
    with pytest.raises(CatalogError, match="fallback"):
        parse_catalog({"behaviours": [{**entry, "fingerprint": {"fields": ["evidence_ref"]}}]})
