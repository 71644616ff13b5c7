"""Copies the console's third-party assets from node_modules (npm ci) into ops_api/console/vendor/, where the ops API
serves them: the console and /docs, /redoc work with no internet access (ADR 0801).

`--check` changes nothing and fails when a vendored file differs from the npm package's (the versions in
package-lock.json are the ones committed).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "ops_api" / "console" / "vendor"
# vendored name -> the file in node_modules it is a copy of
ASSETS = {
    "echarts.esm.min.js": "echarts/dist/echarts.esm.min.js",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "redoc.standalone.js": "redoc/bundles/redoc.standalone.js",
    "openapi-fetch.mjs": "openapi-fetch/dist/index.mjs",
}


def differing(node_modules: Path) -> list[str]:
    """Vendored files that are missing or differ from their npm source."""
    return [name for name, source in ASSETS.items() if not _same(VENDOR / name, node_modules / source)]


def _same(vendored: Path, source: Path) -> bool:
    return vendored.exists() and source.exists() and filecmp.cmp(vendored, source, shallow=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the vendored files are not npm's")
    args = parser.parse_args(argv)
    node_modules = ROOT / "node_modules"
    missing = [source for source in ASSETS.values() if not (node_modules / source).exists()]
    if missing:
        print(f"not in node_modules (run `npm ci`): {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.check:
        stale = differing(node_modules)
        for name in stale:
            print(f"ops_api/console/vendor/{name} is not node_modules/{ASSETS[name]}: run scripts/vendor_console.py")
        return 1 if stale else 0
    VENDOR.mkdir(parents=True, exist_ok=True)
    for name, source in ASSETS.items():
        shutil.copyfile(node_modules / source, VENDOR / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
