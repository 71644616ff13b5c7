"""The NetworkPolicies, evaluated: who can reach whom once every target is applied to one cluster.

A small evaluator of the NetworkPolicy rules (Kubernetes' semantics: a pod selected by a policy of a type is
isolated for that direction and admits only what some selecting policy allows; a connection needs the source's
egress and the destination's ingress) runs over the rendered objects, with the pods of the Deployments and Jobs and
the few things outside our manifests: DNS, the ingress controller, Prometheus, and addresses outside the cluster
(PostgreSQL, Redis, the telemetry backend, the internet). The calls the code makes are read from the manifests'
addresses and the national registry, so a new call without a policy fails here, and so does a policy that admits
more than those calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from service_kit.topology import REGIONAL_SERVICES
from tests.deploy.rendering import NATIONAL, OBSERVABILITY, overlays, rendered, targets

Doc = dict[str, Any]
REGISTRY = NATIONAL / "registry.json"
# Ports outside the cluster: PostgreSQL (behind PgBouncer), Redis, the OTLP backend.
POSTGRES, REDIS, OTLP = 5432, 6379, 4317


@dataclass(frozen=True)
class Pod:
    namespace: str | None  # None: an address outside the cluster
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    ports: tuple[int, ...] = field(default=(), compare=False)


OUTSIDE = Pod(None, "outside")
DNS = Pod("kube-system", "kube-dns", {"k8s-app": "kube-dns"}, (53,))
INGRESS_CONTROLLER = Pod("ingress-nginx", "controller", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = Pod("monitoring", "prometheus", {"app.kubernetes.io/name": "prometheus"})
FOREIGN = (DNS, INGRESS_CONTROLLER, PROMETHEUS)


def selects(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector ({} selects everything)."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if not {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


class Cluster:
    def __init__(self, docs: list[Doc], extra_pods: tuple[Pod, ...] = FOREIGN) -> None:
        self.namespaces: dict[str, dict[str, str]] = {}
        self.policies: list[Doc] = []
        self.pods: list[Pod] = list(extra_pods)
        self.services: dict[tuple[str, str], Doc] = {}
        self.docs = docs
        for pod in extra_pods:
            self.namespaces.setdefault(str(pod.namespace), {})
        for doc in docs:
            kind, meta = doc["kind"], doc["metadata"]
            if kind == "Namespace":
                self.namespaces[meta["name"]] = dict(meta.get("labels", {}))
            elif kind == "NetworkPolicy":
                self.policies.append(doc)
            elif kind == "Service":
                self.services[(meta["namespace"], meta["name"])] = doc
            elif kind in {"Deployment", "Job"}:
                template = doc["spec"]["template"]
                ports = tuple(
                    port["containerPort"] for c in template["spec"]["containers"] for port in c.get("ports", [])
                )
                self.pods.append(Pod(meta["namespace"], meta["name"], dict(template["metadata"]["labels"]), ports))
        for name, labels in self.namespaces.items():
            labels["kubernetes.io/metadata.name"] = name  # set by the API server on every namespace

    def ours(self) -> list[Pod]:
        """The pods our manifests make (not DNS, the ingress controller or Prometheus)."""
        return [pod for pod in self.pods if pod not in FOREIGN]

    def pod(self, namespace: str, name: str) -> Pod:
        [found] = [pod for pod in self.pods if (pod.namespace, pod.name) == (namespace, name)]
        return found

    def behind(self, namespace: str, service_name: str) -> list[Pod]:
        """The pods a Service in `namespace` sends to."""
        selector = self.services[(namespace, service_name)]["spec"]["selector"]
        pods = [
            pod for pod in self.pods if pod.namespace == namespace and selects({"matchLabels": selector}, pod.labels)
        ]
        assert pods, f"Service {namespace}/{service_name} selects no pod"
        return pods

    def _selecting(self, pod: Pod, direction: str) -> list[Doc]:
        if pod.namespace is None:
            return []
        return [
            policy
            for policy in self.policies
            if policy["metadata"]["namespace"] == pod.namespace
            and direction in policy["spec"].get("policyTypes", ["Ingress"])
            and selects(policy["spec"]["podSelector"], pod.labels)
        ]

    def _peer_matches(self, peer: Doc, policy_namespace: str, other: Pod) -> bool:
        if "ipBlock" in peer:
            return other.namespace is None
        if other.namespace is None:
            return False
        if "namespaceSelector" in peer:
            if not selects(peer["namespaceSelector"], self.namespaces[other.namespace]):
                return False
        elif other.namespace != policy_namespace:
            return False
        return selects(peer.get("podSelector"), other.labels)

    @staticmethod
    def _port_matches(rule: Doc, port: int, protocol: str) -> bool:
        if "ports" not in rule:
            return True
        for entry in rule["ports"]:
            assert isinstance(entry.get("port", 0), int), f"named port {entry['port']}: use the number"
            low = entry.get("port", 0)
            high = entry.get("endPort", low)
            if entry.get("protocol", "TCP") == protocol and (low == 0 or low <= port <= high):
                return True
        return False

    def _admits(self, pod: Pod, other: Pod, port: int, protocol: str, direction: str) -> bool:
        policies = self._selecting(pod, direction)
        if not policies:
            return True
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in policies:
            for rule in policy["spec"].get(key, []):
                peers = rule.get(peers_key)
                peer_ok = peers is None or any(
                    self._peer_matches(peer, policy["metadata"]["namespace"], other) for peer in peers
                )
                if peer_ok and self._port_matches(rule, port, protocol):
                    return True
        return False

    def allowed(self, source: Pod, destination: Pod, port: int, protocol: str = "TCP") -> bool:
        return self._admits(source, destination, port, protocol, "Egress") and self._admits(
            destination, source, port, protocol, "Ingress"
        )


def cluster() -> Cluster:
    return Cluster([doc for target in targets() for doc in rendered(target)])


def _host_port(address: str) -> tuple[str, str, int]:
    """(service name, namespace or "", port) of `name:port` or `name.namespace.svc.cluster.local:port`."""
    host, _, port = address.rpartition(":")
    name, _, rest = host.partition(".")
    return name, rest.split(".")[0] if rest else "", int(port)


def calls_the_code_makes(world: Cluster) -> list[tuple[Pod, Pod, int, str]]:
    """(caller, callee, port, why) for every connection the deployed code opens, read from the manifests."""
    calls = []
    registry = json.loads(REGISTRY.read_text(encoding="utf-8"))
    national_addresses = [registry["gateway_address"]] + [
        region[key] for region in registry["regions"] for key in region if key.endswith("_address")
    ]
    for doc in world.docs:
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        namespace = doc["metadata"]["namespace"]
        caller = world.pod(namespace, doc["metadata"]["name"])
        containers = [
            *doc["spec"]["template"]["spec"].get("initContainers", []),
            *doc["spec"]["template"]["spec"]["containers"],
        ]
        for container in containers:
            for item in container.get("env", []):
                if item["name"].endswith("_ADDRESS") and "value" in item:
                    name, callee_namespace, port = _host_port(item["value"])
                    callees = world.behind(callee_namespace or namespace, name)
                    calls += [(caller, callee, port, item["name"]) for callee in callees]
                if item["name"] == "CARBON_DATABASE_URL":
                    calls += [(caller, pod, 6432, "database") for pod in world.behind(namespace, "pgbouncer")]
                if item["name"] == "CARBON_REDIS_URL":
                    calls.append((caller, OUTSIDE, REDIS, "redis"))
            if "CARBON_REGISTRY_FILE" in {item["name"] for item in container.get("env", [])}:
                for address in national_addresses:
                    name, callee_namespace, port = _host_port(address)
                    for callee in world.behind(callee_namespace, name):
                        if callee != caller:
                            calls.append((caller, callee, port, f"registry {address}"))
            # Only a serving process (`python -m <service>`) starts telemetry; migrations do not.
            serving = container.get("command", [])[:2] == ["python", "-m"]
            for source in container.get("envFrom", []) if serving else []:
                config = next(
                    d
                    for d in world.docs
                    if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"] == source["configMapRef"]["name"]
                    and d["metadata"]["namespace"] == namespace
                )
                endpoint = config["data"].get("OTEL_EXPORTER_OTLP_ENDPOINT")
                exporters = {config["data"].get(f"OTEL_{signal}_EXPORTER") for signal in ("TRACES", "METRICS")}
                if endpoint and "otlp" in exporters:
                    name, callee_namespace, port = _host_port(urlparse(endpoint).netloc)
                    calls += [(caller, pod, port, "telemetry") for pod in world.behind(callee_namespace, name)]
        if doc["metadata"]["name"] == "pgbouncer":
            calls.append((caller, OUTSIDE, POSTGRES, "PostgreSQL"))
    collector = world.behind("observability", "otel-collector")
    calls += [(PROMETHEUS, pod, 8889, "metrics scrape") for pod in collector]
    calls += [(pod, OUTSIDE, OTLP, "telemetry backend") for pod in collector]
    return calls


def test_every_connection_the_code_opens_is_allowed() -> None:
    world = cluster()
    calls = calls_the_code_makes(world)
    kinds = {why.split()[0] for *_, why in calls}
    assert {
        "CARBON_LEDGER_ADDRESS",
        "CARBON_IDENTITY_ADDRESS",
        "CARBON_GATEWAY_ADDRESS",
        "registry",
        "database",
        "telemetry",
        "redis",
    } <= kinds
    refused = [
        f"{a.namespace}/{a.name} -> {b.namespace}/{b.name}:{port} ({why})"
        for a, b, port, why in calls
        if not world.allowed(a, b, port)
    ]
    assert not refused, "\n".join(refused)
    for pod in world.ours():
        assert world.allowed(pod, DNS, 53, "UDP"), f"{pod.namespace}/{pod.name} cannot resolve names"


def test_from_outside_only_the_gateway_and_the_ops_api_answer() -> None:
    world = cluster()
    reachable = {
        (pod.namespace, pod.name, port)
        for pod in world.ours()
        for port in pod.ports
        if world.allowed(INGRESS_CONTROLLER, pod, port)
    }
    assert reachable == {("carbon-national", "gateway", 50051), ("carbon-national", "ops-api", 8080)}
    assert not [pod for pod in world.ours() for port in pod.ports if world.allowed(OUTSIDE, pod, port)]


def test_a_regions_services_admit_only_their_callers_in_the_code_and_the_national_tier() -> None:
    world = cluster()
    calls = calls_the_code_makes(world)
    regional = [
        pod
        for pod in world.pods
        if (pod.namespace or "").startswith("carbon-")
        and pod.namespace != "carbon-national"
        and pod.labels.get("app.kubernetes.io/component") == "service"
    ]
    assert len(regional) == len(REGIONAL_SERVICES) * len(overlays())
    for callee in regional:
        expected = {(a.namespace, a.name) for a, b, port, _ in calls if b == callee and port == 50051}
        admitted = {(a.namespace, a.name) for a in world.pods if a != callee and world.allowed(a, callee, 50051)}
        assert admitted == expected, (
            f"{callee.namespace}/{callee.name}: admits {sorted(admitted)}, called by {sorted(expected)}"
        )
        assert {("carbon-national", "gateway"), ("carbon-national", "ops-api")} <= admitted
        assert all(namespace in {callee.namespace, "carbon-national"} for namespace, _ in admitted)


def test_inside_the_cluster_the_gateway_admits_the_ops_api_and_every_regions_ingest_and_identity_only() -> None:
    world = cluster()
    gateway = world.pod("carbon-national", "gateway")
    admitted = {
        (pod.namespace, pod.name) for pod in world.ours() if pod != gateway and world.allowed(pod, gateway, 50051)
    }
    regions = {(f"carbon-{overlay.name}", kind) for overlay in overlays() for kind in ("ingest", "identity")}
    # ingest claims activities (docs/adr/0413); identity asks about a guardian of another region (docs/adr/0209)
    assert admitted == {("carbon-national", "ops-api"), *regions}


def test_only_pgbouncer_reaches_postgresql_and_every_database_user_reaches_only_its_own_pgbouncer() -> None:
    world = cluster()
    to_postgres = {(pod.namespace, pod.name) for pod in world.ours() if world.allowed(pod, OUTSIDE, POSTGRES)}
    assert to_postgres == {
        (namespace, "pgbouncer") for namespace in ("carbon-national", *(f"carbon-{o.name}" for o in overlays()))
    }
    for pod in world.pods:
        for pooler in [p for p in world.pods if p.name == "pgbouncer"]:
            if world.allowed(pod, pooler, 6432):
                assert pod.namespace == pooler.namespace, (
                    f"{pod.namespace}/{pod.name} reaches {pooler.namespace}'s pool"
                )


@pytest.mark.parametrize(
    ("policies", "allowed"),
    [
        ([], True),  # nothing selects the pods: everything is allowed
        ([{"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}], False),  # default deny
        ([{"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}], True),  # an empty rule allows all
        # namespaceSelector AND podSelector in one peer: the right pod in the wrong namespace is refused
        (
            [
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [
                                {
                                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "elsewhere"}},
                                    "podSelector": {"matchLabels": {"app": "a"}},
                                }
                            ]
                        }
                    ],
                }
            ],
            False,
        ),
        # the same as two peers (OR): the pod matches the podSelector peer in the policy's own namespace
        (
            [
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [
                                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "elsewhere"}}},
                                {"podSelector": {"matchLabels": {"app": "a"}}},
                            ]
                        }
                    ],
                }
            ],
            True,
        ),
        ([{"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": 81}]}]}], False),
        (
            [
                {
                    "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["b"]}]},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"ports": [{"port": 80}]}],
                }
            ],
            True,
        ),
    ],
)
def test_the_evaluator_follows_kubernetes_semantics(policies: list[Doc], allowed: bool) -> None:
    a = Pod("here", "a", {"app": "a"}, (80,))
    b = Pod("here", "b", {"app": "b"}, (80,))
    docs = [
        {"kind": "NetworkPolicy", "metadata": {"namespace": "here", "name": f"p{i}"}, "spec": spec}
        for i, spec in enumerate(policies)
    ]
    world = Cluster(docs, extra_pods=(a, b))
    assert world.allowed(a, b, 80) is allowed


def test_targets_cover_the_regions_and_the_national_tier() -> None:
    assert {NATIONAL, OBSERVABILITY, *overlays()} == set(targets())
    assert Path(REGISTRY).is_file()
