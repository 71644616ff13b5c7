"""identity_svc's own settings on top of the shared CARBON_* variables (`base`), read once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field

from service_kit.settings import EmptyIsUnset, ServiceSettings, WholeNumber

SERVICE = "identity_svc"


class IdentitySettings(ServiceSettings):
    service_package: ClassVar[str] = SERVICE

    # The Ed25519 private key (PEM) that signs resident authorizations; unset: IssueResidentAuthorization answers
    # UNAVAILABLE RESIDENT_AUTHORIZATION_NOT_CONFIGURED (ADR 0205).
    resident_auth_key_file: Annotated[Path | None, EmptyIsUnset] = Field(
        default=None, validation_alias="CARBON_RESIDENT_AUTH_KEY_FILE"
    )
    # Where the national gateway listens: a guardian of another region is judged there (ADR 0209); "": refused
    # with UNAVAILABLE DEPENDENCY_NOT_CONFIGURED.
    gateway_address: str = Field(default="", validation_alias="CARBON_GATEWAY_ADDRESS")
    # Run the daily 14th-birthday hand-over job in this process (ADR 0210); every replica may: one leads by a lease.
    scheduler: bool = Field(default=False, validation_alias="CARBON_IDENTITY_SCHEDULER")
    # Reminders (ADR 0113). Run the delivery loop in this process (replicas may all run it: rows are claimed).
    reminders: bool = Field(default=False, validation_alias="CARBON_IDENTITY_REMINDERS")
    # JSON {"platforms": {"<platform>": {"url": "https://...", "secret": "..."}}}: each platform's reminder webhook
    # and the secret its bodies are signed with. A platform missing here gets no webhook: its reminders fail and
    # reach the dead-letter list, from which an operator retries them once it is configured.
    reminder_webhooks_file: Annotated[Path | None, EmptyIsUnset] = Field(
        default=None, validation_alias="CARBON_REMINDER_WEBHOOKS_FILE"
    )
    # Where the embedded SMS provider writes messages (one JSON line each); default <data dir>/sms-<region>.jsonl.
    reminder_sms_file: Annotated[Path | None, EmptyIsUnset] = Field(
        default=None, validation_alias="CARBON_REMINDER_SMS_FILE"
    )
    # Seconds between two delivery passes.
    reminder_tick_ms: WholeNumber = Field(default=1000, validation_alias="CARBON_REMINDER_TICK_MS", ge=10)
