"""Partners' signing keys: which key verifies a batch, and for how long after a rotation."""

from __future__ import annotations

from datetime import timedelta

from ingest_svc.domain.partners import PartnerKey, key_for_verification
from tests.ingest.examples import NOW


def test_an_old_key_is_valid_only_within_its_grace_period() -> None:
    old = PartnerKey("k1", b"a", NOW - timedelta(days=30), valid_until=NOW + timedelta(hours=1))
    new = PartnerKey("k2", b"b", NOW)
    assert key_for_verification([old, new], "k1", NOW) == old
    assert key_for_verification([old, new], "k1", NOW + timedelta(hours=2)) is None
    assert key_for_verification([old, new], "k2", NOW + timedelta(days=999)) == new
    assert key_for_verification([old, new], "k3", NOW) is None
