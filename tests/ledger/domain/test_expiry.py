"""The expiry sweep's transfers: the directly formatted fingerprint is the JSON one."""

from __future__ import annotations

import pytest

from ledger_svc.domain.expiry import expire_fingerprint
from ledger_svc.domain.fingerprints import fingerprint_of

pytestmark = pytest.mark.postgres


def test_the_expiry_fingerprint_is_the_general_one() -> None:
    assert expire_fingerprint("expire:12:0", 30) == fingerprint_of(["expire", "expire:12:0", 30])
