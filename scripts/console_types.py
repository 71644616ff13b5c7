"""Generates the console's types from the ops API's OpenAPI document (ADR 0801): ops_api/console/openapi.d.ts, by
openapi-typescript from npm. `--check` writes nothing: it fails when the committed types are not what the document
generates, or when the console's JavaScript does not type-check against them (tsc --checkJs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPES = ROOT / "ops_api" / "console" / "openapi.d.ts"
TSCONFIG = ROOT / "ops_api" / "console" / "tsconfig.json"
BIN = ROOT / "node_modules" / ".bin"


def document() -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from ops_api.app import create_app

    return create_app(None).openapi()  # type: ignore[arg-type]  # the document needs no running context


def generated_types() -> str:
    """What openapi-typescript makes of the current document."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "openapi.json"
        source.write_text(json.dumps(document(), indent=1, sort_keys=True), encoding="utf-8")
        target = Path(folder) / "api.d.ts"
        subprocess.run(
            [str(BIN / "openapi-typescript"), str(source), "--default-non-nullable", "false", "-o", str(target)],
            check=True,
            capture_output=True,
        )
        return target.read_text(encoding="utf-8")


def type_check() -> subprocess.CompletedProcess[str]:
    """tsc over the console's JavaScript with the generated types; its output names any mismatch."""
    return subprocess.run([str(BIN / "tsc"), "-p", str(TSCONFIG)], capture_output=True, text=True, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the types or the console are out of step")
    args = parser.parse_args(argv)
    if not (BIN / "openapi-typescript").exists():
        print("node_modules is missing: run `npm ci`", file=sys.stderr)
        return 2
    types = generated_types()
    if not args.check:
        TYPES.write_text(types, encoding="utf-8")
        return 0
    if TYPES.read_text(encoding="utf-8") != types:
        print("ops_api/console/openapi.d.ts is not what the OpenAPI document generates: run scripts/console_types.py")
        return 1
    checked = type_check()
    print(checked.stdout, checked.stderr, sep="", end="")
    return checked.returncode


if __name__ == "__main__":
    sys.exit(main())
