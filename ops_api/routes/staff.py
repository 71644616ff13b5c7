"""Who is calling, staff users and their tokens (admin), and the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from ops_api.domain.staff import Role
from ops_api.problems import Problem
from ops_api.routes.common import Body, Json, PageSize, PageToken
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import page
from ops_api.service import audit
from ops_api.service.audit import audited
from ops_api.service.staff import create_user, issue_token, list_users, revoke_token

router = APIRouter(prefix="/v1", tags=["staff and audit"])
UserId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")]


class Me(BaseModel):
    """A staff member: community staff carry their region and centre, other roles empty strings."""

    user_id: str
    role: Role
    region_code: str
    centre_id: str


class StaffUser(Me):
    display_name: str
    active: int = Field(description="1: may sign in; 0: disabled")
    created_at: str
    created_by: str


class IssuedToken(BaseModel):
    token_id: str
    token: str = Field(description="the bearer token; shown this once, only its digest is kept")


class RevokedToken(BaseModel):
    token_id: str
    revoked: bool


class AuditEntry(BaseModel):
    """One mutation, refused ones too; personal data never goes in."""

    audit_id: int
    at: str
    actor: str
    role: str
    action: str
    target: str
    reason: str
    request_id: str
    outcome: str
    details: dict[str, Any]


StaffUserPage = page("StaffUserPage", "staff_users", StaffUser, "Staff users in user id order.")
AuditPage = page("AuditPage", "entries", AuditEntry, "Audit entries, newest first.")


@router.get("/me", summary="The staff member behind the token", response_model=Me)
def whoami(staff: CurrentStaff) -> Json:
    return {
        "user_id": staff.user_id,
        "role": staff.role.value,
        "region_code": staff.region_code,
        "centre_id": staff.centre_id,
    }


class StaffUserBody(Body):
    user_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")
    display_name: str = Field(default="", max_length=100)
    role: Role
    region_code: str = Field(default="", pattern=r"^(|[0-9]{6})$")
    centre_id: str = Field(default="", pattern=r"^(|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$")


@router.post("/staff-users", status_code=201, summary="Add a staff user (admin)", response_model=Me)
def add_staff_user(context: Ctx, staff: CurrentStaff, rid: RequestId, body: StaffUserBody) -> Json:
    staff.require(Role.ADMIN)

    def run() -> Json:
        user = create_user(
            context.engine,
            context.clock(),
            body.user_id,
            body.role.value,
            display_name=body.display_name,
            region_code=body.region_code,
            centre_id=body.centre_id,
            created_by=staff.user_id,
        )
        return {
            "user_id": user.user_id,
            "role": user.role.value,
            "region_code": user.region_code,
            "centre_id": user.centre_id,
        }

    return audited(
        context, staff, rid, "staff.create", f"staff:{body.user_id}", run, details=body.model_dump(mode="json")
    )


@router.get("/staff-users", summary="Staff users (admin)", response_model=StaffUserPage)
def list_staff_users(context: Ctx, staff: CurrentStaff, page_size: PageSize = 0, page_token: PageToken = "") -> Json:
    staff.require(Role.ADMIN)
    users, next_token = list_users(context.engine, page_size or 100, page_token)
    return {"staff_users": users, "next_page_token": next_token}


class TokenBody(Body):
    label: str = Field(default="", max_length=100)
    valid_days: int = Field(default=90, ge=1, le=366)


@router.post(
    "/staff-users/{user_id}/tokens",
    status_code=201,
    summary="Issue a bearer token (shown once; admin)",
    response_model=IssuedToken,
)
def issue_staff_token(context: Ctx, staff: CurrentStaff, rid: RequestId, user_id: UserId, body: TokenBody) -> Json:
    staff.require(Role.ADMIN)

    def run() -> Json:
        issued = issue_token(context.engine, context.clock(), user_id, body.label, timedelta(days=body.valid_days))
        return {"token_id": issued.token_id, "token": issued.token}

    return audited(context, staff, rid, "staff.issue_token", f"staff:{user_id}", run, details={"label": body.label})


@router.post("/tokens/{token_id}/revoke", summary="Revoke a token (admin)", response_model=RevokedToken)
def revoke_staff_token(
    context: Ctx, staff: CurrentStaff, rid: RequestId, token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
) -> Json:
    staff.require(Role.ADMIN)

    def run() -> Json:
        if not revoke_token(context.engine, context.clock(), token_id):
            raise Problem(404, "TOKEN_NOT_FOUND", f"no active token {token_id}", {"token_id": token_id})
        return {"token_id": token_id, "revoked": True}

    return audited(context, staff, rid, "staff.revoke_token", f"token:{token_id}", run)


@router.get("/audit-log", summary="Every mutation: who, when, what, why, outcome (admin)", response_model=AuditPage)
def list_audit_log(
    context: Ctx,
    staff: CurrentStaff,
    actor: Annotated[str, Query(max_length=32)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> Json:
    staff.require(Role.ADMIN)
    after = int(page_token) if page_token.isascii() and page_token.isdigit() and len(page_token) < 19 else 0
    rows, last = audit.list_entries(context, page_size or 100, after, actor, action)
    return {"entries": rows, "next_page_token": str(last) if last else ""}
