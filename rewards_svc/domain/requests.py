"""What every request carries and how it is checked: a request id (with the fingerprint of the body it came with, to
tell a retry from a reused id), account numbers and region codes."""

from __future__ import annotations

import hashlib
import json

from rewards_svc.domain.catalog import REGION_CODE_PATTERN
from service_kit.accounts import is_account_number
from service_kit.errors import InvalidArgument

MAX_REQUEST_ID_LENGTH = 128


def require_request_id(request_id: str) -> None:
    if not request_id or len(request_id) > MAX_REQUEST_ID_LENGTH:
        raise InvalidArgument("request_id", f"required, at most {MAX_REQUEST_ID_LENGTH} characters")


def require_account(account_number: str) -> None:
    if not is_account_number(account_number):
        raise InvalidArgument("account_number", "a 16-digit account number with a valid check digit")


def require_region_code(region_code: str) -> None:
    if not REGION_CODE_PATTERN.match(region_code):
        raise InvalidArgument("region_code", "a 6-digit GB/T 2260 region code")


def fingerprint(*parts: object) -> str:
    """A stable digest of a request's body, to tell a retry from a reused idempotency key."""
    canonical = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
