"""The ADR index lists every decision record, each link leads to one, and each record carries its own number."""

from __future__ import annotations

import re
from pathlib import Path

ADR = Path(__file__).resolve().parent.parent / "docs" / "adr"


def records() -> list[Path]:
    return sorted(path for path in ADR.glob("[0-9][0-9][0-9][0-9]-*.md"))


def test_the_index_lists_every_record_and_nothing_else() -> None:
    index = (ADR / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((\d{4}-[^)]+\.md)\)", index))
    assert len(records()) > 30
    assert linked == {path.name for path in records()}


def test_every_record_starts_with_its_own_number_and_no_number_is_used_twice() -> None:
    numbers = [path.name[:4] for path in records()]
    assert len(numbers) == len(set(numbers)), "two records share a number"
    for path in records():
        assert path.read_text(encoding="utf-8").startswith(f"# {path.name[:4]} "), path.name
