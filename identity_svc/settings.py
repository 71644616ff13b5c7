"""identity_svc's own settings on top of the shared CARBON_* variables (`base`), read once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field

from service_kit.settings import EmptyIsUnset, ServiceSettings

SERVICE = "identity_svc"


class IdentitySettings(ServiceSettings):
    service_package: ClassVar[str] = SERVICE

    # The Ed25519 private key (PEM) that signs resident authorizations; unset: IssueResidentAuthorization answers
    # UNAVAILABLE RESIDENT_AUTHORIZATION_NOT_CONFIGURED (ADR 0205).
    resident_auth_key_file: Annotated[Path | None, EmptyIsUnset] = Field(
        default=None, validation_alias="CARBON_RESIDENT_AUTH_KEY_FILE"
    )
