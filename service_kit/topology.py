"""Which processes the embedded system runs, on which ports, and the registry file that describes them.

The registry file (<data_dir>/registry.json) is how the gateway learns its regions and how `carbon status` finds a
running system: adding a region is a line of configuration, not code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

REGION_NAMES: dict[str, tuple[str, str]] = {
    "110000": ("Beijing", "北京"),
    "310000": ("Shanghai", "上海"),
    "330000": ("Zhejiang", "浙江"),
    "440100": ("Guangzhou", "广州"),
    "440300": ("Shenzhen", "深圳"),
    "120000": ("Tianjin", "天津"),
    "320000": ("Jiangsu", "江苏"),
    "500000": ("Chongqing", "重庆"),
}

# Each region's services, in start order, with their offset from the region's base port.
REGIONAL_SERVICES = ("identity_svc", "ingest_svc", "ledger_svc", "rewards_svc", "incentives_svc")
NATIONAL_SERVICES = ("gateway", "ops_api")
DEFAULT_REGIONS = ("330000", "110000", "310000")
# Below the Linux ephemeral range (32768-60999), so no outgoing connection can be holding one of these ports.
DEFAULT_BASE_PORT = 18050
PORTS_PER_REGION = 10
REGISTRY_FILE = "registry.json"


@dataclass(frozen=True)
class ProcessSpec:
    service: str
    region_code: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def label(self) -> str:
        return self.service if self.service in NATIONAL_SERVICES else f"{self.service}/{self.region_code}"


@dataclass(frozen=True)
class RegionEntry:
    region_code: str
    name_en: str
    name_zh: str
    identity_address: str
    ingest_address: str
    ledger_address: str
    rewards_address: str
    # Empty in registries written before the incentives service existed (and in tests that run without it).
    incentives_address: str = ""


@dataclass(frozen=True)
class Registry:
    gateway_address: str
    regions: list[RegionEntry] = field(default_factory=list)
    # The ops HTTP API, when this system runs one ("" otherwise).
    ops_api_address: str = ""

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Registry:
        raw = json.loads(path.read_text(encoding="utf-8"))
        regions = [RegionEntry(**region) for region in raw["regions"]]
        return cls(raw["gateway_address"], regions, raw.get("ops_api_address", ""))

    def processes(self) -> list[ProcessSpec]:
        """Every process of the system, in start order (the ops API last: it needs the others)."""
        specs = [_spec("gateway", "000000", self.gateway_address)]
        for region in self.regions:
            for service in REGIONAL_SERVICES:
                address = getattr(region, f"{service.removesuffix('_svc')}_address")
                if address:
                    specs.append(_spec(service, region.region_code, address))
        if self.ops_api_address:
            specs.append(_spec("ops_api", "000000", self.ops_api_address))
        return specs


def _spec(service: str, region_code: str, address: str) -> ProcessSpec:
    host, _, port = address.rpartition(":")
    return ProcessSpec(service, region_code, host, int(port))


def plan(regions: list[str], host: str = "127.0.0.1", base_port: int = DEFAULT_BASE_PORT) -> Registry:
    """The embedded layout: the ops HTTP API on base_port - 1, the gateway on base_port, region i's services on
    base_port + 10*(i+1) + 1..4."""
    entries = []
    for index, code in enumerate(regions):
        if len(code) != 6 or not code.isdigit():
            raise ValueError(f"region code must be 6 digits (GB/T 2260), got {code!r}")
        first = base_port + PORTS_PER_REGION * (index + 1)
        name_en, name_zh = REGION_NAMES.get(code, (f"Region {code}", code))
        addresses = {service: f"{host}:{first + offset}" for offset, service in enumerate(REGIONAL_SERVICES, start=1)}
        entries.append(
            RegionEntry(
                code,
                name_en,
                name_zh,
                identity_address=addresses["identity_svc"],
                ingest_address=addresses["ingest_svc"],
                ledger_address=addresses["ledger_svc"],
                rewards_address=addresses["rewards_svc"],
                incentives_address=addresses["incentives_svc"],
            )
        )
    if len(set(regions)) != len(regions):
        raise ValueError(f"each region may appear once, got {','.join(regions)}")
    return Registry(f"{host}:{base_port}", entries, ops_api_address=f"{host}:{base_port - 1}")
