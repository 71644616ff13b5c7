"""Transfer requests: the directly formatted fingerprint is the JSON one."""

from __future__ import annotations

from ledger_svc.domain.fingerprints import fingerprint_metadata
from ledger_svc.domain.transfers import TransferRequest
from tests.ledger.ledger_support import ISSUANCE, account_number

_TRICKY_TEXTS = ["", "event-7", 'quote " back\\slash', "引用\t\n", "\x00\x1f\u2028", "\ud800 lone", "😀/</"]


def test_the_direct_fingerprint_of_a_plain_credit_is_the_json_one() -> None:
    for reference in _TRICKY_TEXTS:
        request = TransferRequest(f"t-{reference}", ISSUANCE, account_number(3), 515, 1, False, 1234, (), reference, 9)
        assert request.fingerprint() == request.json_fingerprint()


def test_the_direct_fingerprint_of_a_credit_with_metadata_is_the_json_one() -> None:
    for text in _TRICKY_TEXTS:
        metadata = (("rule", "r1"), (text, text), ("behaviour", text), ("rule", "r0"))
        request = TransferRequest("t", ISSUANCE, account_number(3), 515, 1, False, 1234, (), "ref", 9, metadata)
        assert request.fingerprint() == request.json_fingerprint()
        assert request.fingerprint(fingerprint_metadata(metadata)) == request.json_fingerprint()
