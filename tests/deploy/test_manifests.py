"""deploy/ checked without Docker, a cluster or the network: the manifests parse and say true things about the repo.

Each test reads the files as they are and compares them with the code they start: the packages, the settings the
services read, the migrations, the registry format. `kubectl kustomize` renders the overlays where kubectl exists.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.util
import json
import os
import re
import shutil
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
from service_kit.topology import REGIONAL_SERVICES, Registry

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
NATIONAL = K8S / "national"
OVERLAYS = K8S / "overlays"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
SERVICE_PACKAGES = ("gateway", *REGIONAL_SERVICES)
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


def k8s_objects() -> list[tuple[Path, Doc]]:
    """Every Kubernetes object in deploy/k8s (kustomization files are kustomize's, not the cluster's)."""
    return [
        (path, doc)
        for path in sorted(K8S.rglob("*.yaml"))
        if path.name != "kustomization.yaml"
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
_SETTERS = {ROOT / "service_kit" / "embedded.py"}


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
        if f'"{secret}"' in package_source(package) or f"'{secret}'" in package_source(package):
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
        codes = [region.region_code for region in registry.regions]
        assert len(codes) == len(set(codes)), f"{path}: a region listed twice"
        # Registry.load then save gives the same document: no field the loader drops silently.
        assert json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(_as_saved(registry)))


def _as_saved(registry: Registry) -> Doc:
    from dataclasses import asdict

    return asdict(registry)


# ---------------------------------------------------------------- Deployments


def deployments() -> list[tuple[Path, Doc]]:
    found = of_kind("Deployment")
    assert len(found) == len(SERVICE_PACKAGES), [doc["metadata"]["name"] for _, doc in found]
    return found


def test_every_deployment_runs_a_real_service_package() -> None:
    packages = set()
    for path, deployment in deployments():
        package = package_of(main_container(deployment)["command"])
        assert (ROOT / package / "__main__.py").is_file(), f"{path}: no {package}/__main__.py in the repo"
        packages.add(package)
    assert packages == set(SERVICE_PACKAGES)


def test_every_deployment_has_grpc_readiness_and_liveness_probes_on_its_serving_port() -> None:
    for path, deployment in deployments():
        container = main_container(deployment)
        ports = {port["containerPort"] for port in container["ports"]}
        listen = env_value(container, "CARBON_PORT")
        assert listen is not None and int(listen) in ports, f"{path}: CARBON_PORT {listen} is not a containerPort"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert probe in container, f"{path}: no {probe}"
            assert "grpc" in container[probe], f"{path}: {probe} is not a native gRPC probe"
            assert container[probe]["grpc"]["port"] == int(listen), f"{path}: {probe} checks another port"
            assert container[probe]["grpc"].get("service", "") == "", "the server sets the overall status ''"
        assert env_value(container, "CARBON_HOST") == "0.0.0.0", f"{path}: must listen beyond loopback for probes"


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
        assert deployment["spec"]["replicas"] >= 2, path
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
        # The Job, the waiting init container and the service must all see the same database.
        job_container = pod_spec(jobs[(path.parent, package)])["containers"][0]
        urls = [_url_source(c) for c in (container, init[0], job_container)]
        assert urls[0] is not None and urls.count(urls[0]) == 3, f"{path}: database URL sources differ: {urls}"


def _url_source(container: Doc) -> Any:
    for item in container.get("env", []):
        if item["name"] == "CARBON_DATABASE_URL":
            return item.get("valueFrom", item.get("value"))
    return None


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


# ---------------------------------------------------------------- Services, PDBs, Jobs


def test_every_service_selects_the_pods_of_a_deployment_and_no_job_pods() -> None:
    services = of_kind("Service")
    assert len(services) == len(SERVICE_PACKAGES)
    for path, service in services:
        selector = service["spec"]["selector"]
        matching = [
            d
            for p, d in of_kind("Deployment")
            if p.parent == path.parent and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, f"{path}: Service {service['metadata']['name']} selects {len(matching)} Deployments"
        port_names = {port["name"] for port in main_container(matching[0])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{path}: targetPort {port['targetPort']} is not a named port"
        for _, job in of_kind("Job"):
            assert not selector.items() <= job["spec"]["template"]["metadata"]["labels"].items(), path


def test_every_pdb_covers_a_deployment_and_leaves_room_to_drain_a_node() -> None:
    budgets = of_kind("PodDisruptionBudget")
    assert len(budgets) == len(SERVICE_PACKAGES)
    for path, budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        matching = [
            d
            for p, d in of_kind("Deployment")
            if p.parent == path.parent and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, path
        assert budget["spec"]["minAvailable"] < matching[0]["spec"]["replicas"], f"{path}: would block every drain"


# ---------------------------------------------------------------- environment variables and secrets


def _k8s_settings() -> Iterator[tuple[str, str, str]]:
    """(where, variable, package) for every variable a manifest gives a service container or migration."""
    for path, workload in [*of_kind("Deployment"), *of_kind("Job")]:
        for container in all_containers(workload):
            command = container["command"]
            package = command[-1] if command[1] == MIGRATE_IN_IMAGE else package_of(command)
            for item in container.get("env", []):
                yield f"{path}:{container['name']}", item["name"], package
    for kustomization in kustomizations():
        packages = ["gateway"] if kustomization.parent == NATIONAL else list(REGIONAL_SERVICES)
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
    assert check_variable("CARBON_REGISTRY_FILE", "ledger_svc", readers)  # the gateway's, not the ledger's
    assert check_variable("CARBON_SECRET_IDENTITY_HMAC_KEY", "ledger_svc", readers)
    assert check_variable("CARBON_REWARDS_ADDRESS", "gateway", readers)  # set by `carbon up`, read by nobody yet
    assert check_variable("CARBON_SECRET_IDENTITY_HMAC_KEY", "identity_svc", readers) is None
    assert check_variable("CARBON_LEDGER_ADDRESS", "ingest_svc", readers) is None


def test_every_referenced_secret_is_documented_and_none_is_filled_in() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert not of_kind("Secret"), "Secrets are created from the secret store, never committed"
    references = set()
    for _, workload in [*of_kind("Deployment"), *of_kind("Job")]:
        for container in all_containers(workload):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    references.add((ref["name"], ref["key"]))
    assert len(references) >= 8
    documented: dict[str, str] = {}  # secret name -> its `kubectl create secret` command in the README
    for chunk in readme.split("create secret generic ")[1:]:
        documented[chunk.split()[0]] = chunk.split("```")[0]
    for name, key in sorted(references):
        assert f"--from-literal={key}=" in documented.get(name, ""), (
            f"deploy/README.md does not show how to create secret {name} with key {key}"
        )
    for _, _, package in _k8s_settings():
        assert package in SERVICE_PACKAGES
    for where, name, _ in _compose_settings():
        service = compose_carbon_services()[where.removeprefix("compose ")]
        if name.startswith("CARBON_SECRET_"):
            assert str(service["environment"][name]).startswith("${"), f"{where}: {name} is filled in"


# ---------------------------------------------------------------- kustomize


def test_every_kustomization_lists_files_that_exist() -> None:
    assert {p.parent for p in kustomizations()} == {BASE, NATIONAL, *overlays()}
    for kustomization in kustomizations():
        content = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        for resource in content["resources"]:
            target = (kustomization.parent / resource).resolve()
            assert target.is_file() or (target / "kustomization.yaml").is_file(), f"{kustomization}: {resource}"
        for generator in content.get("configMapGenerator", []):
            for file in generator.get("files", []):
                assert (kustomization.parent / file).is_file(), f"{kustomization}: {file}"
        listed = {(kustomization.parent / r).resolve() for r in content["resources"]}
        unlisted = {p for p in kustomization.parent.glob("*.yaml") if p.name != "kustomization.yaml"} - listed
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
    for spec in registry.processes():
        name, namespace, *rest = spec.host.split(".")
        assert rest == ["svc", "cluster", "local"], spec
        expected = "gateway" if spec.service == "gateway" else spec.service.removesuffix("_svc")
        assert name == expected, spec
        if spec.service == "gateway":
            assert namespace == "carbon-national"
            continue
        assert namespace == f"carbon-{spec.region_code}", spec
        assert spec.port in {port["port"] for port in services[name]["spec"]["ports"]}, spec
    [gateway] = [d for p, d in of_kind("Deployment") if p.parent == NATIONAL]
    container = main_container(gateway)
    mount = container["volumeMounts"][-1]
    assert env_value(container, "CARBON_REGISTRY_FILE") == f"{mount['mountPath']}/registry.json"
    volume = next(v for v in pod_spec(gateway)["volumes"] if v["name"] == mount["name"])
    generated = yaml_docs(NATIONAL / "kustomization.yaml")[0]["configMapGenerator"]
    [registry_generator] = [g for g in generated if g["name"] == volume["configMap"]["name"]]
    assert registry_generator["files"] == ["registry.json"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed: kustomize rendering not checked")
def test_kustomize_renders_every_overlay_with_its_region_applied() -> None:
    for target in [*overlays(), NATIONAL]:
        result = subprocess.run(
            ["kubectl", "kustomize", str(target)], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        namespace = "carbon-national" if target == NATIONAL else f"carbon-{target.name}"
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]
            if doc["kind"] in {"Deployment", "Job"}:
                for container in all_containers(doc):
                    assert container["image"].startswith("registry."), container["image"]
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
    expected = {("gateway", "000000")} | {(s, r) for s in REGIONAL_SERVICES for r in ("330000", "110000")}
    assert set(layout) == expected


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
            assert host in service["depends_on"], f"compose {name} should wait for {host}"
    registry = Registry.load(DEPLOY / "registry.compose.json")
    for spec in registry.processes():
        target = services[spec.host]
        assert package_of(target["command"]) == spec.service, spec
        assert str(target["environment"]["CARBON_PORT"]) == str(spec.port), spec
        if spec.service != "gateway":
            assert target["environment"]["CARBON_REGION"] == spec.region_code, spec
    gateway = services["gateway"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in gateway["volumes"]}
    mounted = mounts[gateway["environment"]["CARBON_REGISTRY_FILE"]]
    assert (DEPLOY / mounted).resolve() == (DEPLOY / "registry.compose.json").resolve()


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


def _healthcheck_code() -> str:
    tests = {tuple(s["healthcheck"]["test"][:3]) for s in compose_carbon_services().values()}
    assert tests == {("CMD", "python", "-c")}, "every service checks gRPC health with python -c"
    [code] = {s["healthcheck"]["test"][3] for s in compose_carbon_services().values()}
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


def test_compose_healthcheck_fails_when_nothing_listens() -> None:
    env = {**os.environ, "CARBON_PORT": "9"}  # discard: nothing serves gRPC there
    result = subprocess.run(
        [sys.executable, "-c", _healthcheck_code()], env=env, capture_output=True, timeout=30, check=False
    )
    assert result.returncode != 0


def test_dev_secrets_are_keys_the_services_accept() -> None:
    from identity_svc.crypto import load_keyring

    env = load_script("dev_secrets").dev_env()
    compose_secrets = {
        name for service in compose_carbon_services().values() for name in service["environment"] if "SECRET" in name
    }
    assert compose_secrets | {"POSTGRES_PASSWORD"} == set(env), "compose needs exactly what dev_secrets.py prints"
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
    run_as = {doc["spec"]["template"]["spec"]["securityContext"]["runAsUser"] for _, doc in of_kind("Deployment")}
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
