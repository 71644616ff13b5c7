"""The manifests as the cluster would receive them: every kustomize target rendered once per test session.

`kubectl kustomize` is the renderer (kubectl ships kustomize). Where kubectl is missing the tests that need rendering
are skipped loudly, or fail under CARBON_REQUIRE_SERVICES=1 (CI), like the tests that need PostgreSQL or Redis.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
NATIONAL = K8S / "national"
OBSERVABILITY = K8S / "observability"
OVERLAYS = K8S / "overlays"

Doc = dict[str, Any]


def overlays() -> list[Path]:
    return sorted(path for path in OVERLAYS.iterdir() if path.is_dir())


def targets() -> list[Path]:
    """What an operator applies: each region's overlay, the national tier, the cluster's collector."""
    return [*overlays(), NATIONAL, OBSERVABILITY]


def namespace_of(target: Path) -> str:
    if target == NATIONAL:
        return "carbon-national"
    if target == OBSERVABILITY:
        return "observability"
    return f"carbon-{target.name}"


@functools.cache
def _render(target: Path) -> tuple[Doc, ...]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(target)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {target}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def rendered(target: Path) -> list[Doc]:
    """The objects `kubectl apply -k <target>` would send (a copy: tests may not change the cache)."""
    if shutil.which("kubectl") is None:
        message = "kubectl not installed: the rendered manifests are not checked"
        if os.environ.get("CARBON_REQUIRE_SERVICES") == "1":
            pytest.fail(f"CARBON_REQUIRE_SERVICES=1 but {message}", pytrace=False)
        pytest.skip(f"SKIPPED LOUDLY: {message}")
    return copy.deepcopy(list(_render(target)))


def rendered_everything() -> list[Doc]:
    return [doc for target in targets() for doc in rendered(target)]
