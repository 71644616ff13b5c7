"""Service identities for the benchmarks: keys and a trust bundle made once per run in a temporary folder (as
`carbon up` makes them, service_kit/embedded_trust.py), so every benchmark measures with production authentication:
servers verify the caller's token, callers present one."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import grpc

from service_kit import identities
from service_kit.channels import open_channel
from service_kit.embedded_trust import EmbeddedTrust, prepare
from service_kit.settings import Settings

REGIONS = ("110000", "310000", "330000")


@functools.cache
def trust() -> EmbeddedTrust:
    folder = Path(tempfile.mkdtemp(prefix="carbon-bench-trust-"))
    atexit.register(shutil.rmtree, folder, True)
    return prepare(folder, REGIONS, mtls=False)


def env(service: str, region_code: str) -> dict[str, str]:
    """The variables that make a service process started by a benchmark who it is in production."""
    return trust().env(identities.identity_of_service(service, region_code))


def server(settings: Settings) -> Settings:
    """Settings of an in-process server: its own identity's key and the bundle."""
    variables = trust().env(settings.identity)
    return settings.model_copy(
        update={
            "service_key_file": variables["CARBON_SERVICE_KEY_FILE"],
            "trust_bundle_file": variables["CARBON_TRUST_BUNDLE_FILE"],
        }
    )


def channel(address: str, spiffe_id: str, options: Sequence[tuple[str, int | str]] = ()) -> grpc.Channel:
    """A channel presenting `spiffe_id`, as that service's own calls do."""
    return open_channel(address, trust().settings(spiffe_id), options)
