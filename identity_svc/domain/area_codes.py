"""GB/T 2260 region codes at province and prefecture level, current and historical (gb2260_prefectures.yaml)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

_DATA_FILE = Path(__file__).with_name("gb2260_prefectures.yaml")


@cache
def prefecture_codes() -> frozenset[str]:
    with _DATA_FILE.open(encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle)
    return frozenset(str(code) for code in loaded)


def is_known_area_code(code: str) -> bool:
    """An ID number's six-digit area code: known itself, or its prefecture (first four digits + "00") is known."""
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return False
    codes = prefecture_codes()
    return code in codes or code[:4] + "00" in codes
