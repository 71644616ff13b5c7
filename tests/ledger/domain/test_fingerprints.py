"""The stored metadata text is json.dumps' compact, sorted text."""

from __future__ import annotations

import json

from ledger_svc.domain.fingerprints import metadata_json

_TRICKY_TEXTS = ["", "event-7", 'quote " back\\slash', "引用\t\n", "\x00\x1f\u2028", "\ud800 lone", "😀/</"]


def test_metadata_json_is_json_dumps_compact_with_sorted_keys() -> None:
    for text in _TRICKY_TEXTS:
        metadata = {"rule": "r1", text: text, "behaviour": text, "a" + text: ""}
        expected = json.dumps(dict(sorted(metadata.items())), separators=(",", ":"), ensure_ascii=False)
        assert metadata_json(metadata) == expected
    assert metadata_json({}) == ""
