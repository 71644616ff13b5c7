"""The rendered manifests are valid Kubernetes objects: every built-in kind against the API's own JSON schemas
(kubernetes-validate, strict: an unknown field is an error), for the oldest Kubernetes the README supports and the
newest the package knows; the ExternalSecret custom resource against a schema vendored in tests/deploy/schemas.

This is the manifest validation CI runs (it is part of `make test`); nothing here needs a cluster or the network.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
from kubernetes_validate.utils import SchemaNotFoundError

from tests.deploy.rendering import rendered, rendered_everything, targets

SCHEMAS = Path(__file__).parent / "schemas"
# deploy/README.md: "Needs Kubernetes >= 1.27" (native gRPC probes).
OLDEST_SUPPORTED = "1.27.0"
CUSTOM_KINDS = {("external-secrets.io/v1", "ExternalSecret"): "externalsecret-external-secrets-v1.json"}

Doc = dict[str, Any]

# kubernetes-validate reads and parses a kind's schema and the version's whole definitions file (megabytes of JSON)
# again for every object it validates: most of this module's time. Each file is parsed once per process instead;
# the validation of each object is the library's own, against the same schemas (docs/adr/0027).
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)


def kubernetes_versions() -> list[str]:
    return [OLDEST_SUPPORTED, kubernetes_validate.latest_version()]


@functools.cache
def _custom_schema(file_name: str) -> Doc:
    schema: Doc = json.loads((SCHEMAS / file_name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def problems(doc: Doc, version: str) -> list[str]:
    """Why the API server (with the CRDs this project needs) would refuse `doc`; empty when it would accept it."""
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    custom = CUSTOM_KINDS.get((doc["apiVersion"], doc["kind"]))
    if custom is not None:
        validator = jsonschema.Draft202012Validator(_custom_schema(custom))
        return [f"{name}: {'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name} (Kubernetes {version}): {'.'.join(map(str, error.path))}: {error.message}"]
    except SchemaNotFoundError:
        return [f"{name}: no schema for {doc['apiVersion']} {doc['kind']} in Kubernetes {version}"]
    return []


@pytest.mark.parametrize("version", kubernetes_versions())
@pytest.mark.parametrize("target", targets(), ids=lambda target: target.name)
def test_every_rendered_object_is_valid_for_the_supported_kubernetes_versions(target: Path, version: str) -> None:
    docs = rendered(target)
    assert len(docs) > 5
    found = [problem for doc in docs for problem in problems(doc, version)]
    assert not found, "\n".join(found)


def test_every_kind_rendered_has_a_schema_to_check_it_against() -> None:
    kinds = {(doc["apiVersion"], doc["kind"]) for doc in rendered_everything()}
    assert ("external-secrets.io/v1", "ExternalSecret") in kinds and (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
    ) in kinds
    # Built-in groups are "" (v1), dotless (apps, autoscaling, policy, batch) or end in k8s.io; the rest are CRDs.
    groups = {kind: kind[0].rpartition("/")[0] for kind in kinds}
    custom = {kind for kind, group in groups.items() if "." in group and not group.endswith("k8s.io")}
    assert custom <= set(CUSTOM_KINDS), (
        f"custom resources without a vendored schema: {sorted(custom - set(CUSTOM_KINDS))}"
    )


def _first(kind: str) -> Doc:
    return next(doc for doc in rendered_everything() if doc["kind"] == kind)


@pytest.mark.parametrize(
    ("kind", "spoil"),
    [
        ("HorizontalPodAutoscaler", lambda d: d["spec"].update(minReplica=2)),  # a typo: strict schemas refuse it
        ("HorizontalPodAutoscaler", lambda d: d.update(apiVersion="autoscaling/v2beta2")),  # removed in 1.26
        ("NetworkPolicy", lambda d: d["spec"].update(policyTypes="Ingress")),  # a list, not a string
        ("Deployment", lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name")),
        ("Ingress", lambda d: d["spec"]["tls"][0].update(hosts="ops.example.cn")),  # a list of hosts
        ("ExternalSecret", lambda d: d["spec"]["secretStoreRef"].update(kind="ClusterSecretstore")),
        ("ExternalSecret", lambda d: d["spec"]["data"][0]["remoteRef"].update(propery="x")),
        ("ExternalSecret", lambda d: d.update(apiVersion="external-secrets.io/v1beta1")),
    ],
)
def test_the_validation_refuses_a_spoiled_object(kind: str, spoil: Any) -> None:
    doc = copy.deepcopy(_first(kind))
    assert not problems(doc, OLDEST_SUPPORTED)
    spoil(doc)
    assert problems(doc, OLDEST_SUPPORTED), f"a spoiled {kind} passed"
