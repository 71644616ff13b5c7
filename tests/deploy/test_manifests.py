"""deploy/ checked without Docker, a cluster or the network: the manifests parse and say true things about the repo.

Each test reads the files as they are and compares them with the code they start: the packages, the settings the
services read, the migrations, the registry format. `kubectl kustomize` renders the targets (rendering.py); the
rendered objects are validated against Kubernetes' schemas in test_schemas.py, the NetworkPolicies evaluated in
test_network_policies.py, PgBouncer and the autoscalers checked against the code in test_pooling_and_scaling.py.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service_kit.settings import Settings, SettingsError
from service_kit.topology import NATIONAL_SERVICES, REGIONAL_SERVICES, RegionEntry, Registry
from tests.deploy.rendering import OBSERVABILITY, namespace_of, rendered, targets

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
NATIONAL = K8S / "national"
OVERLAYS = K8S / "overlays"
COMPONENTS = K8S / "components"
# Kustomizations the others include: PgBouncer, the default NetworkPolicies.
SHARED = (K8S / "pgbouncer", K8S / "network-defaults")
# The image every carbon-account service runs (the manifests' `images:` point it at a registry).
IMAGE = "carbon-account"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
SERVICE_PACKAGES = (*NATIONAL_SERVICES, *REGIONAL_SERVICES)
# Served over HTTP (uvicorn) with an unauthenticated GET /healthz; the others serve gRPC and its health protocol.
HTTP_SERVICES = ("ops_api",)
HEALTH_PATH = "/healthz"
MIGRATE_IN_IMAGE = "/opt/carbon/migrate.py"

Doc = dict[str, Any]


# ---------------------------------------------------------------- loading


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _parsed(path: Path, mtime_ns: int) -> tuple[Doc, ...]:
    return tuple(doc for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader) if doc is not None)


def yaml_docs(path: Path) -> list[Doc]:
    """The documents of a YAML file (parsed once per content; tests only read them)."""
    return list(_parsed(path, path.stat().st_mtime_ns))


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def generated_from() -> set[Path]:
    """Files that configMapGenerators turn into ConfigMaps (configuration of a program, not Kubernetes objects)."""
    files = set()
    for kustomization in kustomizations():
        for generator in yaml.safe_load(kustomization.read_text(encoding="utf-8")).get("configMapGenerator", []):
            files |= {kustomization.parent / entry.split("=")[-1] for entry in generator.get("files", [])}
    return files


def k8s_objects() -> list[tuple[Path, Doc]]:
    """Every Kubernetes object in deploy/k8s (kustomization files are kustomize's, not the cluster's)."""
    skip = generated_from()
    return [
        (path, doc)
        for path in sorted(K8S.rglob("*.yaml"))
        if path.name != "kustomization.yaml" and path not in skip
        for doc in yaml_docs(path)
    ]


def of_kind(kind: str) -> list[tuple[Path, Doc]]:
    return [(path, doc) for path, doc in k8s_objects() if doc["kind"] == kind]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def all_containers(workload: Doc) -> list[Doc]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def runs_carbon_image(workload: Doc) -> bool:
    return all(container["image"] == IMAGE for container in all_containers(workload))


def main_container(deployment: Doc) -> Doc:
    containers = pod_spec(deployment)["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: expected one serving container"
    container: Doc = containers[0]
    return container


def env_value(container: Doc, name: str) -> str | None:
    for item in container.get("env", []):
        if item["name"] == name:
            value = item.get("value")
            return None if value is None else str(value)
    return None


def generator_literals(kustomization: Path) -> dict[str, dict[str, str]]:
    """configMapGenerator name -> its literals, as kustomize would put them in the ConfigMap."""
    result: dict[str, dict[str, str]] = {}
    for generator in yaml.safe_load(kustomization.read_text(encoding="utf-8")).get("configMapGenerator", []):
        literals = dict(literal.split("=", 1) for literal in generator.get("literals", []))
        result.setdefault(generator["name"], {}).update(literals)
    return result


def effective_config(overlay: Path, name: str) -> dict[str, str]:
    """A ConfigMap generated in the base and merged by an overlay: base literals, then the overlay's."""
    merged = dict(generator_literals(BASE / "kustomization.yaml").get(name, {}))
    merged.update(generator_literals(overlay / "kustomization.yaml").get(name, {}))
    return merged


def package_of(command: list[str]) -> str:
    assert command[:2] == ["python", "-m"] and len(command) == 3, f"not `python -m <package>`: {command}"
    return command[2]


def compose() -> Doc:
    [loaded] = yaml_docs(COMPOSE)
    return loaded


def compose_carbon_services() -> dict[str, Doc]:
    return {name: svc for name, svc in compose()["services"].items() if svc.get("command", [None])[0] == "python"}


def overlays() -> list[Path]:
    return sorted(path for path in OVERLAYS.iterdir() if path.is_dir())


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", DEPLOY / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- what the code reads

_SOURCE_DIRS = ("service_kit", *SERVICE_PACKAGES)
# The embedded supervisor *sets* variables for its children; only code that reads a name makes it meaningful.
_SETTERS = {ROOT / "service_kit" / "embedded.py", ROOT / "service_kit" / "embedded_front_door.py"}


def variables_read() -> dict[str, set[str]]:
    """CARBON_* name -> the packages whose source mentions it (service_kit means every service reads it)."""
    readers: dict[str, set[str]] = {}
    for package in _SOURCE_DIRS:
        for path in (ROOT / package).rglob("*.py"):
            if path in _SETTERS:
                continue
            for name in re.findall(r"\b(CARBON_[A-Z0-9_]*[A-Z0-9])\b", path.read_text(encoding="utf-8")):
                readers.setdefault(name, set()).add(package)
    return readers


@functools.cache
def package_source(package: str) -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / package).rglob("*.py"))


def check_variable(name: str, package: str, readers: dict[str, set[str]]) -> str | None:
    """Why setting `name` for `package` is pointless, or None when the package (or service_kit) reads it."""
    if name.startswith("CARBON_SECRET_"):
        # settings.secret("<lower name>") reads CARBON_SECRET_<NAME>; the name appears as a string literal.
        secret = name.removeprefix("CARBON_SECRET_").lower()
        source = package_source(package)
        if f'"{secret}"' in source or f"'{secret}'" in source:
            return None
        # A secret per region, CARBON_SECRET_<NAME>_<region code>: read as f"<name>_{region_code}".
        per_region = re.fullmatch(r"(\w+)_(\d{6})", secret)
        if per_region and re.search(rf"""f["']{per_region.group(1)}_\{{""", source):
            return None
        return f"{name}: no secret named {secret!r} in {package}"
    if name not in readers:
        return f"{name}: read by no service"
    if "service_kit" in readers[name] or package in readers[name]:
        return None
    return f"{name}: {package} does not read it (only {sorted(readers[name])})"


# ---------------------------------------------------------------- every file parses


def test_every_yaml_file_parses_and_every_k8s_object_has_kind_and_name() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert COMPOSE in files and len(files) >= 10
    for path in files:
        yaml_docs(path)  # raises on a syntax error
    for path, doc in k8s_objects():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), path
        assert doc["metadata"].get("name"), path


def test_every_json_registry_is_what_registry_save_writes() -> None:
    for path in (DEPLOY / "registry.compose.json", NATIONAL / "registry.json"):
        registry = Registry.load(path)
        assert registry.regions, path
        # Both deployments run the ops API, so both registries name it (Registry.processes() lists it then).
        assert registry.ops_api_address, f"{path}: no ops_api_address"
        assert [spec.service for spec in registry.processes()].count("ops_api") == 1, path
        codes = [region.region_code for region in registry.regions]
        assert len(codes) == len(set(codes)), f"{path}: a region listed twice"
        # Registry.load then save gives the same document: no field the loader drops silently.
        assert json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(_as_saved(registry)))


def _as_saved(registry: Registry) -> Doc:
    from dataclasses import asdict

    return asdict(registry)


# ---------------------------------------------------------------- Deployments


def deployments() -> list[tuple[Path, Doc]]:
    """The carbon-account services' Deployments (PgBouncer and the collector run other images)."""
    found = [(path, doc) for path, doc in of_kind("Deployment") if runs_carbon_image(doc)]
    assert len(found) == len(SERVICE_PACKAGES), [doc["metadata"]["name"] for _, doc in found]
    return found


def autoscaler_of(path: Path, deployment: Doc) -> Doc:
    """The one HorizontalPodAutoscaler beside a Deployment that scales it."""
    [autoscaler] = [
        doc
        for p, doc in of_kind("HorizontalPodAutoscaler")
        if p.parent == path.parent and doc["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    ]
    return autoscaler


def fewest_replicas(path: Path, deployment: Doc) -> int:
    """What a Deployment runs at least: its autoscaler's minimum, or its fixed count when it has none."""
    if "replicas" in deployment["spec"]:
        return int(deployment["spec"]["replicas"])
    return int(autoscaler_of(path, deployment)["spec"]["minReplicas"])


def test_every_deployment_runs_a_real_service_package() -> None:
    packages = set()
    for path, deployment in deployments():
        package = package_of(main_container(deployment)["command"])
        assert (ROOT / package / "__main__.py").is_file(), f"{path}: no {package}/__main__.py in the repo"
        packages.add(package)
    assert packages == set(SERVICE_PACKAGES)


def test_http_services_are_the_packages_that_serve_http_with_a_health_route() -> None:
    serving_http = {p for p in SERVICE_PACKAGES if re.search(r"^import uvicorn", package_source(p), re.MULTILINE)}
    assert serving_http == set(HTTP_SERVICES)
    for package in HTTP_SERVICES:
        route = re.compile(rf'\.get\(\s*"{re.escape(HEALTH_PATH)}"')
        assert route.search(package_source(package)), f"{package}: no GET {HEALTH_PATH} route"


def probe_problem(probe: Doc, package: str, port: int) -> str | None:
    """Why a probe does not check `package` the way it serves on `port`, or None when it does."""
    kinds = {"grpc", "httpGet", "tcpSocket", "exec"} & set(probe)
    if package in HTTP_SERVICES:
        if kinds != {"httpGet"}:
            return f"not an HTTP probe ({sorted(kinds)})"
        http = probe["httpGet"]
        if http.get("path") != HEALTH_PATH or http.get("scheme", "HTTP") != "HTTP":
            return f"httpGet {http.get('scheme', 'HTTP')} {http.get('path')}, not HTTP {HEALTH_PATH}"
        return None if http.get("port") == port else f"checks port {http.get('port')}, serves on {port}"
    if kinds != {"grpc"}:
        return f"not a native gRPC probe ({sorted(kinds)})"
    if probe["grpc"].get("service", "") != "":
        return "the server sets the overall status ''"
    return None if probe["grpc"].get("port") == port else f"checks port {probe['grpc'].get('port')}, serves on {port}"


def test_every_deployment_has_readiness_liveness_and_startup_probes_on_its_serving_port() -> None:
    checked = set()
    for path, deployment in deployments():
        container = main_container(deployment)
        package = package_of(container["command"])
        ports = {port["containerPort"] for port in container["ports"]}
        listen = env_value(container, "CARBON_PORT")
        assert listen is not None and int(listen) in ports, f"{path}: CARBON_PORT {listen} is not a containerPort"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert probe in container, f"{path}: no {probe}"
            problem = probe_problem(container[probe], package, int(listen))
            assert problem is None, f"{path}: {probe}: {problem}"
        assert env_value(container, "CARBON_HOST") == "0.0.0.0", f"{path}: must listen beyond loopback for probes"
        checked.add(package)
    assert set(HTTP_SERVICES) < checked


def test_the_probe_check_rejects_the_wrong_kind_path_or_port() -> None:
    grpc_probe = {"grpc": {"port": 50051}}
    http_probe = {"httpGet": {"path": HEALTH_PATH, "port": 8080}}
    assert probe_problem(grpc_probe, "ledger_svc", 50051) is None
    assert probe_problem(http_probe, "ops_api", 8080) is None
    assert probe_problem(http_probe, "ledger_svc", 8080)  # a gRPC server answers no HTTP/1.1 GET
    assert probe_problem({"grpc": {"port": 8080}}, "ops_api", 8080)  # uvicorn has no gRPC health service
    assert probe_problem({"tcpSocket": {"port": 8080}}, "ops_api", 8080)
    assert probe_problem({"httpGet": {"path": "/health", "port": 8080}}, "ops_api", 8080)
    assert probe_problem(http_probe, "ops_api", 18049)
    assert probe_problem({"grpc": {"port": 50051, "service": "x"}}, "gateway", 50051)


def test_every_pod_runs_as_non_root_under_the_restricted_pod_security_standard() -> None:
    workloads = [*of_kind("Deployment"), *of_kind("Job")]
    assert workloads
    for path, workload in workloads:
        spec = pod_spec(workload)
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, path
        assert context["runAsUser"] != 0 and context.get("runAsGroup", 1) != 0, path
        assert context["seccompProfile"]["type"] == "RuntimeDefault", path
        assert spec.get("automountServiceAccountToken") is False, path
        for container in all_containers(workload):
            own = container["securityContext"]
            assert own["allowPrivilegeEscalation"] is False, f"{path}: {container['name']}"
            assert own["capabilities"]["drop"] == ["ALL"], f"{path}: {container['name']}"
            assert own.get("runAsUser", 1) != 0 and own.get("privileged", False) is False, path
    # The namespaces enforce it, so a later edit that breaks it is refused by the cluster too.
    for path, namespace in of_kind("Namespace"):
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted", path


def test_every_container_has_resource_requests_and_limits() -> None:
    for path, workload in [*of_kind("Deployment"), *of_kind("Job")]:
        for container in all_containers(workload):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{path}: {container['name']} {bound}"


def test_stateless_services_run_replicated_and_stop_within_their_grace_period() -> None:
    for path, deployment in deployments():
        assert "replicas" not in deployment["spec"], f"{path}: the autoscaler owns the count; apply would reset it"
        assert fewest_replicas(path, deployment) >= 2, path
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, path
        config = "carbon-national" if path.parent == NATIONAL else "carbon-region"
        literals = generator_literals(path.parent / "kustomization.yaml")[config]
        drain_s = int(literals["CARBON_GRACE_PERIOD_S"])
        pre_stop = " ".join(main_container(deployment)["lifecycle"]["preStop"]["exec"]["command"])
        pre_stop_s = int(re.search(r"sleep\((\d+)\)", pre_stop).group(1))  # type: ignore[union-attr]
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] > pre_stop_s + drain_s, path


def test_deployments_leave_migrations_to_their_job_and_wait_for_it() -> None:
    migrate = load_script("migrate")
    jobs = {}
    for path, job in of_kind("Job"):
        command = pod_spec(job)["containers"][0]["command"]
        assert command[:2] == ["python", MIGRATE_IN_IMAGE] and "--wait" not in command, path
        jobs[(path.parent, command[-1])] = job
    for path, deployment in deployments():
        container = main_container(deployment)
        package = package_of(container["command"])
        assert env_value(container, "CARBON_MIGRATE_ON_START") == "0", f"{path}: replicas must not migrate"
        assert (path.parent, package) in jobs, f"{path}: no migration Job for {package} beside it"
        assert package in migrate.SERVICES and (ROOT / package / "migrations" / "env.py").is_file()
        init = pod_spec(deployment)["initContainers"]
        assert [c["command"][:3] for c in init] == [["python", MIGRATE_IN_IMAGE, "--wait"]], path
        assert init[0]["command"][-1] == package, path
        # The service, the Job and the waiting init container read one Secret: the service its pooled URL, the Job and
        # the waiter the session-mode URL to the same database (test_pooling_and_scaling checks what those hold).
        job_container = pod_spec(jobs[(path.parent, package)])["containers"][0]
        service_url, *migration_urls = (_url_source(c) for c in (container, init[0], job_container))
        assert service_url["key"] == "database-url", path
        assert migration_urls == [{**service_url, "key": "migration-database-url"}] * 2, f"{path}: {migration_urls}"


def _url_source(container: Doc) -> Doc:
    [item] = [item for item in container.get("env", []) if item["name"] == "CARBON_DATABASE_URL"]
    reference: Doc = item["valueFrom"]["secretKeyRef"]
    return reference


def test_every_runnable_package_with_migrations_is_deployed_and_migrated() -> None:
    runnable = {
        p.parent.parent.name for p in ROOT.glob("*/migrations/env.py") if (p.parent.parent / "__main__.py").is_file()
    }
    assert set(load_script("migrate").SERVICES) == runnable == set(SERVICE_PACKAGES)


def test_migrate_script_migrates_and_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    migrate = load_script("migrate")
    monkeypatch.setenv("CARBON_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("CARBON_REGION", "330000")
    assert migrate.main(["--wait", "--timeout", "0", "ledger_svc"]) == 1  # empty database: not at head
    assert migrate.main(["ledger_svc"]) == 0
    assert migrate.main(["--wait", "--timeout", "0", "ledger_svc"]) == 0
    monkeypatch.setenv("CARBON_REGION", "UNSET")
    assert migrate.main(["ledger_svc"]) == 2  # the base's placeholder region stops the Job too


def test_migrate_script_migrates_the_ops_api_as_a_national_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate = load_script("migrate")
    monkeypatch.setenv("CARBON_DATABASE_URL", f"sqlite:///{tmp_path / 'ops_api.db'}")
    monkeypatch.setenv("CARBON_REGION", "000000")  # the carbon-national ConfigMap's
    assert migrate.main(["--wait", "--timeout", "0", "ops_api"]) == 1
    assert migrate.main(["ops_api"]) == 0
    assert migrate.main(["--wait", "--timeout", "0", "ops_api"]) == 0


def test_community_partner_script_registers_the_partner_in_its_region_and_prints_the_secret(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from carbon.ingest.v1 import ingest_service_pb2 as ingest_pb
    from carbon.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
    from ops_api.settings import OpsSettings

    received: list[Any] = []
    changes: list[Any] = []
    stored: dict[str, Any] = {}

    class FakeIngest(ingest_grpc.IngestServiceServicer):
        def RegisterPartner(self, request: Any, context: grpc.ServicerContext) -> Any:
            received.append(request)
            stored.setdefault(request.partner.partner_id, request.partner)
            return ingest_pb.RegisterPartnerResponse(partner=request.partner, secret="s3cret-" + request.request_id)

        def ListBehaviours(self, request: Any, context: grpc.ServicerContext) -> Any:
            # This region's catalog offers recycling: the partner is to be allowed it.
            codes = ["tree_planting", "sorting_supervisor_day", "recycling_kg"]
            return ingest_pb.ListBehavioursResponse(behaviours=[ingest_pb.Behaviour(code=code) for code in codes])

        def GetPartner(self, request: Any, context: grpc.ServicerContext) -> Any:
            return ingest_pb.GetPartnerResponse(partner=stored[request.partner_id])

        def UpdatePartnerBehaviours(self, request: Any, context: grpc.ServicerContext) -> Any:
            changes.append(request)
            partner = stored[request.partner_id]
            del partner.allowed_behaviours[:]
            partner.allowed_behaviours.extend(request.allowed_behaviours)
            return ingest_pb.UpdatePartnerBehavioursResponse(partner=partner)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    # Only the partner calls: the stubs mark every method abstract, the base class answers UNIMPLEMENTED for the rest.
    ingest_grpc.add_IngestServiceServicer_to_server(FakeIngest(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    script = load_script("community_partner")
    registry = tmp_path / "registry.json"
    Registry("gateway:50051", [RegionEntry("330000", "", "", "", f"127.0.0.1:{port}", "", "")]).save(registry)
    try:
        # As inside the ops API's container: the national region, the registry, the ops API's identity.
        env = {"CARBON_REGION": "000000", "CARBON_REGISTRY_FILE": str(registry)}
        assert script.main(["--region", "330000"], env) == 0
        assert script.main(["--region", "330000"], env) == 0
        assert script.main(["--region", "UNSET"], env) == 2
        assert script.main(["--region", "000000"], env) == 2  # the national tier is no region
        assert script.main(["--region", "110000"], env) == 2  # not in the registry, and no --ingest
        # Nothing serves there: an error, no secret printed.
        assert script.main(["--region", "330000", "--ingest", "127.0.0.1:9"], env) == 1
    finally:
        server.stop(0)
    printed = capsys.readouterr().out.split()
    assert len(printed) == 2 and printed[0] == printed[1] and printed[0].startswith("s3cret-")
    first, again = received
    assert first.request_id == again.request_id, "one idempotency key: a second run gets the same secret"
    partner = first.partner
    assert partner.partner_id == OpsSettings.from_env({"CARBON_REGION": "000000"}).community_partner_id
    assert partner.kind == ingest_pb.PARTNER_KIND_COMMUNITY_CENTRE
    assert list(partner.allowed_regions) == ["330000"] and partner.allowed_behaviours
    # The catalog's counter behaviour added once (the second run finds the partner has it), none removed.
    assert [list(change.allowed_behaviours) for change in changes] == [
        ["recycling_kg", "sorting_supervisor_day", "tree_planting"]
    ]


# ---------------------------------------------------------------- Services, PDBs, Jobs


def test_every_service_selects_the_pods_of_a_deployment_and_no_job_pods() -> None:
    services = of_kind("Service")
    assert len(services) == len(SERVICE_PACKAGES) + 2  # and PgBouncer's and the collector's
    for path, service in services:
        selector = service["spec"]["selector"]
        matching = [
            d
            for p, d in of_kind("Deployment")
            if p.parent == path.parent and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, f"{path}: Service {service['metadata']['name']} selects {len(matching)} Deployments"
        port_names = {port["name"] for port in pod_spec(matching[0])["containers"][0]["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{path}: targetPort {port['targetPort']} is not a named port"
        for _, job in of_kind("Job"):
            assert not selector.items() <= job["spec"]["template"]["metadata"]["labels"].items(), path


def test_every_pdb_covers_a_deployment_and_leaves_room_to_drain_a_node() -> None:
    budgets = of_kind("PodDisruptionBudget")
    assert len(budgets) == len(SERVICE_PACKAGES) + 2
    for path, budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        matching = [
            d
            for p, d in of_kind("Deployment")
            if p.parent == path.parent and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, path
        fewest = fewest_replicas(path, matching[0])
        assert budget["spec"]["minAvailable"] < fewest, f"{path}: would block every drain"


# ---------------------------------------------------------------- environment variables and secrets


def _k8s_settings() -> Iterator[tuple[str, str, str]]:
    """(where, variable, package) for every variable a manifest gives a service container or migration."""
    for path, workload in [*of_kind("Deployment"), *of_kind("Job")]:
        if not runs_carbon_image(workload):
            continue
        for container in all_containers(workload):
            command = container["command"]
            package = command[-1] if command[1] == MIGRATE_IN_IMAGE else package_of(command)
            for item in container.get("env", []):
                yield f"{path}:{container['name']}", item["name"], package
    for kustomization in kustomizations():
        if kustomization.parent not in {BASE, NATIONAL, *overlays()}:
            continue  # PgBouncer's and the collector's generators configure those programs
        packages = list(NATIONAL_SERVICES) if kustomization.parent == NATIONAL else list(REGIONAL_SERVICES)
        for generator, literals in generator_literals(kustomization).items():
            for name in literals:
                for package in packages:
                    yield f"{kustomization}:{generator}", name, package


def _compose_settings() -> Iterator[tuple[str, str, str]]:
    for name, service in compose_carbon_services().items():
        for variable in service["environment"]:
            yield f"compose {name}", variable, package_of(service["command"])


def test_every_carbon_variable_a_manifest_sets_is_read_by_that_service() -> None:
    readers = variables_read()
    assert {"CARBON_DATABASE_URL", "CARBON_REGION", "CARBON_REGISTRY_FILE"} <= set(readers)  # the grep works
    problems = []
    seen = 0
    for where, name, package in [*_k8s_settings(), *_compose_settings()]:
        if not name.startswith("CARBON_"):
            assert name.startswith("OTEL_"), f"{where}: {name} is neither CARBON_* nor OpenTelemetry's"
            continue
        seen += 1
        problem = check_variable(name, package, readers)
        if problem:
            problems.append(f"{where}: {problem}")
    assert seen > 50
    assert not problems, "\n".join(problems)


def test_the_variable_check_rejects_what_no_service_reads() -> None:
    readers = variables_read()
    assert check_variable("CARBON_DATABASE_URLS", "ledger_svc", readers)  # a typo
    # The gateway's, not the ledger's (CARBON_REGISTRY_FILE moved into service_kit.regions, so it no longer serves).
    assert check_variable("CARBON_GATEWAY_CONFIG", "ledger_svc", readers)
    assert check_variable("CARBON_SECRET_IDENTITY_HMAC_KEY", "ledger_svc", readers)
    assert check_variable("CARBON_REWARDS_ADDRESS", "gateway", readers)  # set by `carbon up`, read by nobody yet
    assert check_variable("CARBON_SECRET_IDENTITY_HMAC_KEY", "identity_svc", readers) is None
    assert check_variable("CARBON_LEDGER_ADDRESS", "ingest_svc", readers) is None
    assert check_variable("CARBON_OPS_RATE_LIMIT_PER_MINUTE", "gateway", readers)  # the ops API's, not the gateway's
    assert check_variable("CARBON_OPS_RATE_LIMIT_PER_MINUTE", "ops_api", readers) is None
    # Secrets per region: only where the code reads f"<name>_{region}".
    assert check_variable("CARBON_SECRET_COMMUNITY_PARTNER_330000", "ops_api", readers) is None
    assert check_variable("CARBON_SECRET_COMMUNITY_PARTNER_330000", "ingest_svc", readers)
    assert check_variable("CARBON_SECRET_COMMUNITY_PARTNERS_330000", "ops_api", readers)
    assert check_variable("CARBON_SECRET_GATEWAY_API_KEY_330000", "ops_api", readers)


def secrets_made_by(docs: list[Doc]) -> dict[str, set[str]]:
    """Secret name -> its keys, for the Secrets an ExternalSecret renders (the template's keys, else the data's)."""
    made: dict[str, set[str]] = {}
    for doc in docs:
        if doc["kind"] == "ExternalSecret":
            spec = doc["spec"]
            template = spec["target"].get("template", {}).get("data")
            made[spec["target"]["name"]] = set(template) if template else {d["secretKey"] for d in spec["data"]}
    return made


def secrets_used_by(docs: list[Doc]) -> set[tuple[str, str | None]]:
    """(Secret name, key) every pod reads: env references, and whole Secrets mounted as volumes (key None)."""
    used: set[tuple[str, str | None]] = set()
    for doc in docs:
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        for container in all_containers(doc):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    used.add((ref["name"], ref["key"]))
        for volume in pod_spec(doc).get("volumes", []):
            if "secret" in volume:
                used.add((volume["secret"]["secretName"], None))
    return used


def test_every_secret_a_pod_reads_comes_from_the_secret_store_and_none_is_filled_in() -> None:
    assert not of_kind("Secret"), "Secrets come from the secret store, never committed"
    checked = 0
    for target in targets():
        docs = rendered(target)
        made = secrets_made_by(docs)
        for name, key in sorted(secrets_used_by(docs), key=str):
            assert name in made, f"{target}: Secret {name} is read but no ExternalSecret makes it"
            assert key is None or key in made[name], f"{target}: {name} has no key {key} (only {sorted(made[name])})"
            checked += 1
        for doc in docs:
            if doc["kind"] == "ExternalSecret":
                assert doc["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "carbon-secret-store"}
            if doc["kind"] == "Ingress":
                # TLS certificates are cert-manager's, issued into the Secret the Ingress names.
                assert doc["metadata"]["annotations"]["cert-manager.io/cluster-issuer"], doc["metadata"]["name"]
    assert checked >= 15
    for where, name, _ in _compose_settings():
        service = compose_carbon_services()[where.removeprefix("compose ")]
        if name.startswith("CARBON_SECRET_"):
            assert str(service["environment"][name]).startswith("${"), f"{where}: {name} is filled in"


def test_every_secret_store_entry_is_documented_and_a_region_reads_only_its_own() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for target in [*overlays(), NATIONAL]:
        for doc in rendered(target):
            if doc["kind"] != "ExternalSecret":
                continue
            for item in doc["spec"]["data"]:
                key, prop = item["remoteRef"]["key"], item["remoteRef"]["property"]
                owner = key.split("/")[1]
                # A region's only national Secrets are the values every region shares (national-*).
                if target != NATIONAL and not doc["metadata"]["name"].startswith("national-"):
                    assert owner == target.name, f"{target}: {doc['metadata']['name']} reads {key}"
                documented = key if owner == "national" else key.replace(f"/{owner}/", "/<code>/")
                rows = [line for line in readme.splitlines() if f"`{documented}`" in line]
                assert any(f"`{prop}`" in row for row in rows), f"deploy/README.md: no `{documented}` `{prop}`"


# ---------------------------------------------------------------- kustomize


def test_every_kustomization_lists_files_that_exist() -> None:
    assert {p.parent for p in kustomizations()} == {
        BASE,
        NATIONAL,
        OBSERVABILITY,
        COMPONENTS / "region",
        COMPONENTS / "trust",
        *SHARED,
        *overlays(),
    }
    for kustomization in kustomizations():
        content = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        for resource in [*content.get("resources", []), *content.get("components", [])]:
            target = (kustomization.parent / resource).resolve()
            assert target.is_file() or (target / "kustomization.yaml").is_file(), f"{kustomization}: {resource}"
        for generator in content.get("configMapGenerator", []):
            for file in generator.get("files", []):
                assert (kustomization.parent / file.split("=")[-1]).is_file(), f"{kustomization}: {file}"
        listed = {(kustomization.parent / r).resolve() for r in content.get("resources", [])}
        unlisted = (
            {p for p in kustomization.parent.glob("*.yaml") if p.name != "kustomization.yaml"}
            - listed
            - generated_from()
        )
        assert not unlisted, f"{kustomization}: manifests it forgets: {sorted(map(str, unlisted))}"


def test_each_overlay_is_a_region_by_configuration_alone() -> None:
    found = overlays()
    assert {p.name for p in found} >= {"330000"}
    with pytest.raises(SettingsError):  # the base alone must not start as some default region
        Settings.from_env("ledger_svc", effective_config(BASE, "carbon-region"))
    for overlay in found:
        code = overlay.name
        content = yaml.safe_load((overlay / "kustomization.yaml").read_text(encoding="utf-8"))
        assert content["namespace"] == f"carbon-{code}"
        assert "../../base" in content["resources"]
        assert content["components"] == ["../../components/region"], f"{overlay}: its secrets would not be its own"
        settings = Settings.from_env("ledger_svc", effective_config(overlay, "carbon-region"))
        assert settings.region_code == code
        [namespace] = [d for d in yaml_docs(overlay / "namespace.yaml") if d["kind"] == "Namespace"]
        assert namespace["metadata"]["name"] == f"carbon-{code}"
        # Only configuration: no new manifests of its own beyond the namespace.
        assert {p.name for p in overlay.iterdir()} == {"kustomization.yaml", "namespace.yaml"}


def test_the_national_registry_points_at_the_overlays_services() -> None:
    registry = Registry.load(NATIONAL / "registry.json")
    services = {doc["metadata"]["name"]: doc for path, doc in of_kind("Service") if path.parent == BASE}
    assert {region.region_code for region in registry.regions} == {p.name for p in overlays()}
    national = {doc["metadata"]["name"]: doc for path, doc in of_kind("Service") if path.parent == NATIONAL}
    national_deployments = {
        package_of(main_container(d)["command"]): d for p, d in of_kind("Deployment") if p.parent == NATIONAL
    }
    assert set(national_deployments) == set(NATIONAL_SERVICES)
    listed = set()
    for spec in registry.processes():
        name, namespace, *rest = spec.host.split(".")
        assert rest == ["svc", "cluster", "local"], spec
        assert name == spec.service.removesuffix("_svc").replace("_", "-"), spec
        if spec.service in NATIONAL_SERVICES:
            assert namespace == "carbon-national", spec
            service = national[name]
            container = main_container(national_deployments[spec.service])
            # The Service's port leads to the port the process listens on.
            [port] = [port for port in service["spec"]["ports"] if port["port"] == spec.port]
            [target] = [p for p in container["ports"] if p["name"] == port["targetPort"]]
            assert str(target["containerPort"]) == env_value(container, "CARBON_PORT"), spec
        else:
            assert namespace == f"carbon-{spec.region_code}", spec
            assert spec.port in {port["port"] for port in services[name]["spec"]["ports"]}, spec
        listed.add(spec.service)
    assert set(NATIONAL_SERVICES) <= listed
    # Both national processes read this registry, mounted from the generated ConfigMap.
    generated = yaml_docs(NATIONAL / "kustomization.yaml")[0]["configMapGenerator"]
    for deployment in national_deployments.values():
        container = main_container(deployment)
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "registry"]
        assert env_value(container, "CARBON_REGISTRY_FILE") == f"{mount['mountPath']}/registry.json"
        volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"])
        [registry_generator] = [g for g in generated if g["name"] == volume["configMap"]["name"]]
        assert registry_generator["files"] == ["registry.json"]


def test_the_ops_api_holds_the_community_partner_secret_of_every_region() -> None:
    from service_kit.partner_registration import COMMUNITY_PARTNER_ID

    [ops] = [d for p, d in deployments() if package_of(main_container(d)["command"]) == "ops_api"]
    env = {item["name"]: item for item in main_container(ops)["env"]}
    # It signs as the partner deploy/community_partner.py registers.
    assert env_value(main_container(ops), "CARBON_OPS_COMMUNITY_PARTNER_ID") == COMMUNITY_PARTNER_ID
    for overlay in overlays():
        item = env.get(f"CARBON_SECRET_COMMUNITY_PARTNER_{overlay.name}")
        assert item is not None, f"ops-api: no community-centre partner secret for region {overlay.name}"
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["key"] == f"community-partner-{overlay.name}" and not ref.get("optional"), ref
    regional = {name.rsplit("_", 1)[1] for name in env if name.startswith("CARBON_SECRET_COMMUNITY_PARTNER_")}
    assert regional == {overlay.name for overlay in overlays()}, "a partner secret for a region with no overlay"


def test_kustomize_renders_every_target_into_its_namespace_with_its_region_applied() -> None:
    for target in targets():
        docs = rendered(target)
        config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        namespace = namespace_of(target)
        for doc in docs:
            if doc["kind"] == "Namespace":
                assert doc["metadata"]["name"] == namespace
            else:
                assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]
            if doc["kind"] in {"Deployment", "Job"}:
                for container in all_containers(doc):
                    assert container["image"].startswith(("registry.", "docker.io/")), container["image"]
                    if not container["image"].endswith(f"/{IMAGE}:0.1.0"):
                        continue
                    for source in container.get("envFrom", []):
                        name = source["configMapRef"]["name"]
                        assert name in config_maps, f"{target}: {name} not generated"
                        region = config_maps[name]["data"]["CARBON_REGION"]
                        assert region == ("000000" if target == NATIONAL else target.name)


# ---------------------------------------------------------------- compose


def test_compose_services_depend_on_services_that_exist_and_are_healthy() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "gateway"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"compose {name}: no healthcheck"
        for target, condition in service.get("depends_on", {}).items():
            assert target in services and target != name, f"compose {name}: depends on unknown {target}"
            assert condition["condition"] == "service_healthy", f"compose {name} -> {target}"
    assert services["postgres"]["image"].split(":")[1].startswith("16")
    assert services["redis"]["image"].split(":")[1].startswith("7")


def test_compose_runs_the_gateway_and_two_regions_of_four_services() -> None:
    layout = {}
    for name, service in compose_carbon_services().items():
        package = package_of(service["command"])
        assert (ROOT / package / "__main__.py").is_file(), f"compose {name}: no package {package}"
        environment = service["environment"]
        settings = Settings.from_env(package, {k: str(v) for k, v in environment.items()})
        assert str(environment["CARBON_MIGRATE_ON_START"]) == "1" and settings.migrate_on_start
        assert settings.host == "0.0.0.0" and settings.port > 0
        assert {"postgres", "redis"} <= set(service["depends_on"]), f"compose {name}"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKERFILE
        layout[(package, settings.region_code)] = name
    expected = {(s, "000000") for s in NATIONAL_SERVICES} | {
        (s, r) for s in REGIONAL_SERVICES for r in ("330000", "110000")
    }
    assert set(layout) == expected
    # The ops API calls the gateway and, through the registry, every region: it starts once they serve.
    assert "gateway" in compose()["services"][layout[("ops_api", "000000")]]["depends_on"]


def test_compose_addresses_point_at_the_right_service_of_the_same_region() -> None:
    services = compose_carbon_services()
    for name, service in services.items():
        env = service["environment"]
        for variable, package in (("CARBON_LEDGER_ADDRESS", "ledger_svc"), ("CARBON_IDENTITY_ADDRESS", "identity_svc")):
            if variable not in env:
                continue
            host, _, port = str(env[variable]).rpartition(":")
            target = services[host]
            assert package_of(target["command"]) == package, f"compose {name}: {variable}"
            assert target["environment"]["CARBON_REGION"] == env["CARBON_REGION"], f"compose {name}: other region"
            assert str(target["environment"]["CARBON_PORT"]) == port
            if (package_of(service["command"]), package) == ("ledger_svc", "identity_svc"):
                # Identity waits for the ledger; the ledger's reminder client reaches identity lazily (no cycle).
                assert name in target["depends_on"], f"compose {host} should wait for {name}"
            else:
                assert host in service["depends_on"], f"compose {name} should wait for {host}"
    registry = Registry.load(DEPLOY / "registry.compose.json")
    for spec in registry.processes():
        target = services[spec.host]
        assert package_of(target["command"]) == spec.service, spec
        assert str(target["environment"]["CARBON_PORT"]) == str(spec.port), spec
        if spec.service != "gateway":
            assert target["environment"]["CARBON_REGION"] == spec.region_code, spec
    assert {spec.service for spec in registry.processes()} == set(SERVICE_PACKAGES)
    for name in ("gateway", registry.ops_api_address.rpartition(":")[0]):
        mounts = {m.split(":")[1]: m.split(":")[0] for m in services[name]["volumes"]}
        mounted = mounts[services[name]["environment"]["CARBON_REGISTRY_FILE"]]
        assert (DEPLOY / mounted).resolve() == (DEPLOY / "registry.compose.json").resolve(), f"compose {name}"


def test_compose_ledgers_queue_reminders_in_their_regions_identity_as_carbon_up_does() -> None:
    services = compose_carbon_services()
    ledgers = {name: s for name, s in services.items() if package_of(s["command"]) == "ledger_svc"}
    assert len(ledgers) == 2
    for name, ledger in ledgers.items():
        env = ledger["environment"]
        assert str(env["CARBON_LEDGER_SCHEDULER"]) == "1", f"compose {name}: no scheduler"
        host = str(env["CARBON_IDENTITY_ADDRESS"]).rpartition(":")[0]
        assert package_of(services[host]["command"]) == "identity_svc", f"compose {name}"
        assert services[host]["environment"]["CARBON_REGION"] == env["CARBON_REGION"], f"compose {name}"
        assert str(services[host]["environment"]["CARBON_IDENTITY_REMINDERS"]) == "1", f"compose {host}"


def test_compose_databases_are_created_by_the_init_script_one_per_service() -> None:
    postgres = compose()["services"]["postgres"]
    init = next(v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v).split(":")[0]
    created = re.findall(r"^CREATE DATABASE (\w+);", (DEPLOY / init).read_text(encoding="utf-8"), re.MULTILINE)
    used = []
    for name, service in compose_carbon_services().items():
        url = str(service["environment"]["CARBON_DATABASE_URL"])
        assert url.startswith("postgresql://") and "@postgres:5432/" in url, f"compose {name}: {url}"
        used.append(url.rsplit("/", 1)[1])
    assert len(used) == len(set(used)), "two services share a database"
    assert sorted(used) == sorted(created)


def _healthcheck_code(http: bool = False) -> str:
    """The one `python -c` health check the gRPC services share, or the HTTP services' one."""
    checked = [s for s in compose_carbon_services().values() if (package_of(s["command"]) in HTTP_SERVICES) == http]
    assert checked
    tests = {tuple(s["healthcheck"]["test"][:3]) for s in checked}
    assert tests == {("CMD", "python", "-c")}, "every service checks its health with python -c"
    [code] = {s["healthcheck"]["test"][3] for s in checked}
    return str(code)


@pytest.mark.parametrize("status", ["SERVING", "NOT_SERVING"])
def test_compose_healthcheck_reports_the_grpc_health_status(status: str) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        servicer.set("", health_pb2.HealthCheckResponse.ServingStatus.Value(status))
        env = {**os.environ, "CARBON_PORT": str(port)}
        result = subprocess.run(
            [sys.executable, "-c", _healthcheck_code()], env=env, capture_output=True, timeout=30, check=False
        )
    finally:
        server.stop(0)
    assert (result.returncode == 0) == (status == "SERVING"), result.stderr


@pytest.mark.parametrize("http", [False, True], ids=["grpc", "http"])
def test_compose_healthcheck_fails_when_nothing_listens(http: bool) -> None:
    env = {**os.environ, "CARBON_PORT": "9"}  # discard: nothing serves there
    result = subprocess.run(
        [sys.executable, "-c", _healthcheck_code(http)], env=env, capture_output=True, timeout=30, check=False
    )
    assert result.returncode != 0


@pytest.mark.parametrize(
    ("path", "status", "healthy"), [(HEALTH_PATH, 200, True), (HEALTH_PATH, 503, False), ("/", 200, False)]
)
def test_compose_http_healthcheck_asks_the_health_route(path: str, status: int, healthy: bool) -> None:
    """A stand-in server answers `status` on `path` only (404 elsewhere): the check must ask /healthz for a 200."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == path else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "CARBON_PORT": str(server.server_address[1])}
        result = subprocess.run(
            [sys.executable, "-c", _healthcheck_code(http=True)], env=env, capture_output=True, timeout=30, check=False
        )
    finally:
        server.shutdown()
        server.server_close()
    assert (result.returncode == 0) == healthy, result.stderr


def test_dev_secrets_are_keys_the_services_accept() -> None:
    from identity_svc.keys import load_keyring

    env = load_script("dev_secrets").dev_env()
    compose_secrets = {
        name: str(value)
        for service in compose_carbon_services().values()
        for name, value in service["environment"].items()
        if "SECRET" in name
    }
    # ${NAME:?...} must be set (dev_secrets.py prints it); ${NAME:-} is optional, issued by a running service (the
    # community-centre partner's secret comes from ingest's RegisterPartner) and documented in deploy/README.md.
    required = {name for name, value in compose_secrets.items() if re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", value)}
    optional = {name for name, value in compose_secrets.items() if value == f"${{{name}:-}}"}
    assert required | optional == set(compose_secrets), "every compose secret is ${NAME:?...} or ${NAME:-}"
    assert required | {"POSTGRES_PASSWORD"} == set(env), "compose needs exactly what dev_secrets.py prints"
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for name in optional:
        assert f"{name}=" in readme, f"deploy/README.md does not say how to set {name} for compose"
    settings = Settings.from_env("identity_svc", {**env, "CARBON_DATABASE_URL": "postgresql://x@db/identity"})
    load_keyring(settings)  # raises KeyConfigurationError on a missing or malformed key
    assert env != load_script("dev_secrets").dev_env(), "fresh keys every run"


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def test_dockerfile_runs_as_a_numeric_non_root_user_on_python_3_11_slim() -> None:
    froms = [arg for op, arg in dockerfile_instructions() if op == "FROM"]
    assert all(arg.split()[0] == "python:3.11-slim" for arg in froms), froms
    users = [arg for op, arg in final_stage() if op == "USER"]
    assert users, "the final image runs as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]}: numeric and not 0, so runAsNonRoot can verify it"
    run_as = {pod_spec(doc)["securityContext"]["runAsUser"] for _, doc in deployments()}
    assert run_as == {int(user)}, "the manifests run as the image's user"
    assert not any(op == "RUN" for op, _ in final_stage()[[op for op, _ in final_stage()].index("USER") :])


def test_dockerfile_bakes_in_no_secret() -> None:
    for op, arg in dockerfile_instructions():
        if op in {"ENV", "ARG", "LABEL"}:
            assert not re.search(r"SECRET|PASSWORD|TOKEN|DATABASE_URL|REDIS_URL", arg, re.IGNORECASE), f"{op} {arg}"
        if op in {"COPY", "ADD"}:
            assert ".env" not in arg and "secret" not in arg.lower(), f"{op} {arg}"


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.removeprefix("!").removeprefix("**/")
        parts = path.split("/")
        hit = fnmatch.fnmatch(path, pattern.removeprefix("!")) or any(
            fnmatch.fnmatch("/".join(parts[: i + 1]), bare) or fnmatch.fnmatch(parts[i], bare)
            for i in range(len(parts))
        )
        if hit:
            ignored = not negate
    return ignored


def test_dockerfile_copies_every_installed_package_and_the_build_context_keeps_them() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: set[str] = set()
    for op, arg in dockerfile_instructions():
        if op != "COPY" or arg.startswith("--from"):
            continue
        *sources, _ = arg.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repo"
            assert source == "." or not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
            copied.add(source.rstrip("/"))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    include = re.search(r"^include = \[(.*)\]$", pyproject, re.MULTILINE)
    assert include is not None
    roots = {name.strip().strip('"').rstrip("*") for name in include.group(1).split(",")} - {"carbon"}
    assert {"service_kit", *SERVICE_PACKAGES} <= roots
    # What `pip install .` needs must be copied and must survive .dockerignore.
    needed = {"pyproject.toml", "README.md", "gen", *(root for root in roots if (ROOT / root).is_dir())}
    for path in sorted(needed):
        assert "." in copied or path in copied, f"the Dockerfile does not copy {path}"
        assert not _ignored(path, patterns), f"{path} is excluded by .dockerignore"
        assert not _ignored(f"{path}/migrations/env.py", patterns), f"{path}'s migrations are excluded"
    assert not _ignored("deploy/migrate.py", patterns)
    copy_migrate = [a for op, a in final_stage() if op == "COPY" and "migrate.py" in a]
    assert copy_migrate and copy_migrate[0].split()[-1] == MIGRATE_IN_IMAGE
    for local in ("deploy/.env", ".env", ".venv/bin/python", "data/registry.json", ".git/config", "tests/conftest.py"):
        assert _ignored(local, patterns), f"{local} would enter the image"
