"""No service package imports another's; the kit imports none. Services talk over the contracts in protos/ only.

Every import statement of every production module counts, wherever it stands (inside a function, under
TYPE_CHECKING): each is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICE_PACKAGES = ("identity_svc", "ingest_svc", "ledger_svc", "rewards_svc", "incentives_svc", "gateway", "ops_api")
KIT = "service_kit"
# The one place that tunes the cyclic garbage collector for a service process (ADR 0007).
GC_TUNING = ROOT / "service_kit" / "server.py"
GC_SETTERS = {"freeze", "set_threshold", "disable", "enable"}


def imported_packages(source: str) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def forbidden_imports(package: str, root: Path = ROOT) -> list[str]:
    """`path:line imports <package>` for each import of a service package other than `package` itself."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for line, imported in imported_packages(path.read_text(encoding="utf-8")):
            if imported in SERVICE_PACKAGES and imported != package:
                found.append(f"{path.relative_to(root)}:{line} imports {imported}")
    return found


def test_the_walk_finds_every_kind_of_import() -> None:
    source = (
        "import ledger_svc.store\n"
        "from gateway.regions import RegionRegistry\n"
        "from . import wire\n"
        "def f():\n"
        "    import rewards_svc as r\n"
        "if TYPE_CHECKING:\n"
        "    from ingest_svc import domain\n"
    )
    assert [name for _, name in imported_packages(source)] == ["ledger_svc", "gateway", "rewards_svc", "ingest_svc"]


def test_an_import_of_another_service_is_reported_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "gateway" / "service").mkdir(parents=True)
    (tmp_path / "gateway" / "service" / "transfers.py").write_text(
        "from gateway.store import tables\nimport service_kit\n\nfrom ledger_svc.domain import lots\n"
    )
    assert forbidden_imports("gateway", tmp_path) == ["gateway/service/transfers.py:4 imports ledger_svc"]


def test_every_package_is_walked() -> None:
    for package in (*SERVICE_PACKAGES, KIT):
        assert (ROOT / package / "__init__.py").is_file(), package
        assert len(list((ROOT / package).rglob("*.py"))) > 3, package


def test_no_service_imports_another_service() -> None:
    violations = [found for package in SERVICE_PACKAGES for found in forbidden_imports(package)]
    assert not violations, "a service imports another's package:\n" + "\n".join(violations)


def test_the_kit_imports_no_service() -> None:
    violations = forbidden_imports(KIT)
    assert not violations, "the kit imports a service package:\n" + "\n".join(violations)


def garbage_collector_settings(source: str) -> list[int]:
    """Lines that call gc.freeze / set_threshold / disable / enable."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "gc"
        and node.func.attr in GC_SETTERS
    ]


def test_the_garbage_collector_is_tuned_in_the_kit_only() -> None:
    assert garbage_collector_settings("import gc\ngc.collect()\ngc.set_threshold(1, 2, 3)\n") == [3]
    assert garbage_collector_settings(GC_TUNING.read_text(encoding="utf-8")), "the kit's tuning moved: update this test"
    elsewhere = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in SERVICE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in garbage_collector_settings(path.read_text(encoding="utf-8"))
    ]
    assert not elsewhere, "tune the collector once, in service_kit.server.serve:\n" + "\n".join(elsewhere)
