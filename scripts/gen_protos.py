"""Generates the Python code for protos/ into gen/ (committed; CI checks that regenerating changes nothing).

Run it with `make protos`. The output mirrors the proto packages, so `from carbon.ledger.v1 import ...` works
once the project is installed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "gen"


def main() -> int:
    # The mypy-protobuf plugins live beside this interpreter (the venv's bin/), which may not be on PATH.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    shutil.rmtree(OUT / "carbon", ignore_errors=True)
    OUT.mkdir(exist_ok=True)
    proto_files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = Path(protoc.__file__).parent / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{well_known}",
            f"--python_out={OUT}",
            f"--mypy_out={OUT}",
            f"--grpc_python_out={OUT}",
            f"--mypy_grpc_out={OUT}",
            *proto_files,
        ]
    )
    if status != 0:
        return int(status)
    for folder in [OUT / "carbon", *(p for p in (OUT / "carbon").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
        (folder / "py.typed").touch()
    print(f"generated {len(proto_files)} proto files into {OUT.relative_to(ROOT)}/carbon")
    return 0


if __name__ == "__main__":
    sys.exit(main())
