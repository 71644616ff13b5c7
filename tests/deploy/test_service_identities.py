"""Every deployed service knows who it is and whom to trust (docs/access.md, ADR 0011), as `carbon up` wires them.

A service without CARBON_SERVICE_IDENTITY, its key file and the trust bundle refuses every call but health checks; one
given another's key claims another's identity. So every compose service and every rendered Deployment that runs a
carbon-account package must get its own ID, a mounted key file that is its own, and the bundle; identity also gets
its resident-authorization signing key and the gateway the JWKS that verifies those (ADR 0205, 0605).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from service_kit import identities
from service_kit.embedded_front_door import RESIDENT_AUTH_JWKS_FILE, resident_auth_key_file
from service_kit.identities import TrustBundle, identity_of_service, load_private_key
from service_kit.topology import Registry
from tests.deploy.rendering import NATIONAL, overlays, rendered
from tests.deploy.test_manifests import load_script

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
IDENTITY_VARIABLES = ("CARBON_SERVICE_IDENTITY", "CARBON_SERVICE_KEY_FILE", "CARBON_TRUST_BUNDLE_FILE")

Doc = dict[str, Any]


def _package(command: list[str]) -> str:
    return command[2] if command[:2] == ["python", "-m"] else ""


# ---------------------------------------------------------------- compose


def compose_services() -> dict[str, Doc]:
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    return {name: service for name, service in services.items() if _package(service.get("command", []))}


def compose_mounts(service: Doc) -> dict[str, str]:
    """Container path -> host path of the service's read-only bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        host, container, mode = volume.split(":")
        assert mode == "ro", f"{volume}: keys and bundles are mounted read-only"
        mounts[container] = host
    return mounts


def compose_file(service: Doc, variable: str) -> str:
    """The host file (relative to deploy/) mounted where `variable` points."""
    path = service["environment"].get(variable)
    assert path, f"no {variable}"
    host = compose_mounts(service).get(path)
    assert host, f"{variable}={path} is not mounted"
    return host.removeprefix("./")


def test_every_compose_service_has_its_own_identity_key_and_the_bundle() -> None:
    services = compose_services()
    assert len(services) == 2 + 2 * len(identities.REGIONAL_KINDS)
    key_files = set()
    for name, service in services.items():
        env = service["environment"]
        expected = identity_of_service(_package(service["command"]), env["CARBON_REGION"])
        assert env.get("CARBON_SERVICE_IDENTITY") == expected, name
        key = compose_file(service, "CARBON_SERVICE_KEY_FILE")
        assert key == f"identities/{identities.key_file_name(expected)}", f"{name} must get its own key, not {key}"
        assert compose_file(service, "CARBON_TRUST_BUNDLE_FILE") == "identities/trust-bundle.json", name
        key_files.add(key)
    assert len(key_files) == len(services), "no two services share a key"


def test_compose_gives_identity_its_resident_key_and_the_gateway_the_jwks_and_no_one_else() -> None:
    for name, service in compose_services().items():
        package, env = _package(service["command"]), service["environment"]
        if package == "identity_svc":
            own = resident_auth_key_file(Path("identities"), env["CARBON_REGION"])
            assert compose_file(service, "CARBON_RESIDENT_AUTH_KEY_FILE") == str(own), name
        else:
            assert "CARBON_RESIDENT_AUTH_KEY_FILE" not in env, f"{name} must not hold a resident-authorization key"
        if package == "gateway":
            assert compose_file(service, "CARBON_RESIDENT_AUTH_JWKS_FILE") == f"identities/{RESIDENT_AUTH_JWKS_FILE}"
        else:
            assert "CARBON_RESIDENT_AUTH_JWKS_FILE" not in env, name


def test_dev_secrets_writes_every_mounted_file_and_each_key_matches_the_bundle(tmp_path: Path) -> None:
    dev_secrets = load_script("dev_secrets")
    registry = Registry.load(DEPLOY / "registry.compose.json")
    folder = dev_secrets.write_trust(tmp_path / "identities", registry)
    bundle = TrustBundle.load(folder / "trust-bundle.json")
    codes = [region.region_code for region in registry.regions]
    assert set(bundle.keys) == set(identities.all_identities(codes))
    for name, service in compose_services().items():
        env = service["environment"]
        for host in compose_mounts(service).values():
            if host.startswith("./identities/"):
                assert (tmp_path / host.removeprefix("./")).is_file(), f"{name}: {host} is not written"
        key = load_private_key(tmp_path / compose_file(service, "CARBON_SERVICE_KEY_FILE"))
        assert key.public_key() == bundle.keys[env["CARBON_SERVICE_IDENTITY"]], f"{name}: key not in the bundle"
    jwks = json.loads((folder / RESIDENT_AUTH_JWKS_FILE).read_text())
    assert {key["kid"] for key in jwks["keys"]} == {identities.regional(code, "identity") for code in codes}


def test_dev_secrets_writes_keys_only_into_a_new_folder(tmp_path: Path) -> None:
    dev_secrets = load_script("dev_secrets")
    registry = Registry.load(DEPLOY / "registry.compose.json")
    first = (dev_secrets.write_trust(tmp_path / "a", registry) / "trust-bundle.json").read_text()
    assert (dev_secrets.write_trust(tmp_path / "b", registry) / "trust-bundle.json").read_text() != first
    with pytest.raises(SystemExit):  # it would keep the keys it found there, or overwrite an operator's files
        dev_secrets.write_trust(tmp_path / "a", registry)


# ---------------------------------------------------------------- Kubernetes


def env_of(container: Doc) -> dict[str, Doc]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def mounted(pod: Doc, container: Doc, path: str) -> tuple[Doc, str]:
    """The pod volume a file path lies in, and the file's name inside it."""
    for mount in container.get("volumeMounts", []):
        folder = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(folder):
            assert mount.get("readOnly") is True, f"{path}: mounted writable"
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            return volume, path.removeprefix(folder)
    raise AssertionError(f"{path} lies in no mounted volume")


def secret_key_of(pod: Doc, container: Doc, variable: str) -> tuple[str, str]:
    """(Secret name, key) of the file `variable` names, mounted from a Secret volume item."""
    volume, file = mounted(pod, container, env_of(container)[variable]["value"])
    assert "secret" in volume, f"{variable}: a key comes from a Secret"
    items = {item["path"]: item["key"] for item in volume["secret"]["items"]}
    assert file in items, f"{variable}: {file} is not an item of the volume"
    return volume["secret"]["secretName"], items[file]


def configmap_file(docs: list[Doc], pod: Doc, container: Doc, variable: str) -> str:
    """The content of the file `variable` names, mounted from a ConfigMap rendered in the same target."""
    volume, file = mounted(pod, container, env_of(container)[variable]["value"])
    assert "configMap" in volume, f"{variable}: not from a ConfigMap"
    name = volume["configMap"]["name"]
    configmap = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)
    content: str = configmap["data"][file]
    return content


def externally_rendered_keys(docs: list[Doc], secret: str) -> set[str]:
    """The keys the ExternalSecret that owns Secret `secret` renders into it."""
    owner = next(d for d in docs if d["kind"] == "ExternalSecret" and d["spec"]["target"]["name"] == secret)
    template = owner["spec"]["target"].get("template", {}).get("data", {})
    return set(template) | {item["secretKey"] for item in owner["spec"]["data"]}


def service_deployments(docs: list[Doc]) -> list[tuple[Doc, Doc, str]]:
    """(pod spec, main container, package) of each Deployment running a carbon-account service."""
    found = []
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        for container in pod["containers"]:
            package = _package(container.get("command", []))
            if package:
                found.append((pod, container, package))
    return found


@pytest.mark.parametrize("target", [*overlays(), NATIONAL], ids=lambda path: path.name)
def test_every_deployment_gets_its_identity_its_own_key_and_the_bundle(target: Path, tmp_path: Path) -> None:
    docs = rendered(target)
    deployments = service_deployments(docs)
    region = "000000" if target == NATIONAL else target.name
    assert len(deployments) == (2 if target == NATIONAL else len(identities.REGIONAL_KINDS))
    for pod, container, package in deployments:
        env = env_of(container)
        assert set(IDENTITY_VARIABLES) <= set(env), package
        assert env["CARBON_SERVICE_IDENTITY"]["value"] == identity_of_service(package, region), package
        secret, key = secret_key_of(pod, container, "CARBON_SERVICE_KEY_FILE")
        assert key == "service-key" and key in externally_rendered_keys(docs, secret), package
        assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["fsGroup"] == 10001, package
        bundle = tmp_path / f"{package}-bundle.json"
        bundle.write_text(configmap_file(docs, pod, container, "CARBON_TRUST_BUNDLE_FILE"))
        TrustBundle.load(bundle)  # the shape the services read


@pytest.mark.parametrize("target", [*overlays(), NATIONAL], ids=lambda path: path.name)
def test_identity_gets_its_resident_key_and_the_gateway_the_jwks(target: Path) -> None:
    docs = rendered(target)
    for pod, container, package in service_deployments(docs):
        env = env_of(container)
        if package == "identity_svc":
            secret, key = secret_key_of(pod, container, "CARBON_RESIDENT_AUTH_KEY_FILE")
            assert key == "resident-auth-key" and key in externally_rendered_keys(docs, secret)
        else:
            assert "CARBON_RESIDENT_AUTH_KEY_FILE" not in env, package
        if package == "gateway":
            jwks = json.loads(configmap_file(docs, pod, container, "CARBON_RESIDENT_AUTH_JWKS_FILE"))
            assert isinstance(jwks["keys"], list)
        else:
            assert "CARBON_RESIDENT_AUTH_JWKS_FILE" not in env, package


def test_a_region_reads_its_service_keys_from_its_own_store_entries() -> None:
    for target in overlays():
        docs = rendered(target)
        for doc in docs:
            if doc["kind"] != "ExternalSecret":
                continue
            for item in doc["spec"]["data"]:
                if item["remoteRef"]["property"] in ("service-key", "resident-auth-key"):
                    assert item["remoteRef"]["key"].startswith(f"carbon/{target.name}/"), doc["metadata"]["name"]
