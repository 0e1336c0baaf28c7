"""Explaining access, the access review (SPEC §2) and server admins (SPEC §1).

Rules live in ``tow_core.administration``; this module parses the ``scope`` parameter and encodes.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from litestar import Router, delete, get, put
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from tow_core.access import Condition, ScopeKind
from tow_core.administration import AccessExplanation, AccessReview, DeactivatedGrant, ReviewedGrant, ReviewedUser
from tow_core.errors import InvalidInput
from tow_core.identity import Group, User
from tow_core.unit_of_work import Credential
from tow_core.use_cases.administration import ProjectUseCases
from tow_http.administration.organisations_api import MemberOut, OrganisationOut, member_out, organisation_out
from tow_http.administration.projects_api import GrantOut, ProjectOut, grant_out, project_out
from tow_http.shapes import END

_SCOPE = re.compile(r"(organisation|group|project|user):([0-9]{1,18})")
ScopeText = Annotated[str, QueryParameter(name="scope", description="KIND:ID, e.g. project:12",
                                          pattern=f"^{_SCOPE.pattern}{END}")]


# --- shapes -----------------------------------------------------------------------------------


class DecisionOut(msgspec.Struct):
    allowed: bool
    rule: str | None  # the granting rule (a stable condition name), None when denied
    reason: str


class ExplanationOut(msgspec.Struct):
    user_id: int
    scope: str
    read: DecisionOut
    write: DecisionOut


class UserOut(msgspec.Struct):
    id: int
    email: str
    display_name: str
    is_server_admin: bool
    is_active: bool


class GroupRefOut(msgspec.Struct):
    id: int
    name: str


class ReviewedUserOut(msgspec.Struct):
    user_id: int
    email: str
    display_name: str
    is_active: bool
    effective_role: str | None


class ReviewedGrantOut(msgspec.Struct):
    grant: GrantOut
    group: GroupRefOut | None  # None for a direct grant
    users: list[ReviewedUserOut]


class ReviewedProjectOut(msgspec.Struct):
    project: ProjectOut
    grants: list[ReviewedGrantOut]


class DeactivatedGrantOut(msgspec.Struct):
    project_id: int
    project_key: str
    grant: GrantOut
    group: GroupRefOut | None
    user: ReviewedUserOut


class AccessReviewOut(msgspec.Struct):
    organisation: OrganisationOut
    managers: list[MemberOut]
    server_admins: list[UserOut]
    restricted_projects: list[ReviewedProjectOut]
    deactivated_grants: list[DeactivatedGrantOut]


# --- mappers ----------------------------------------------------------------------------------


def parse_scope(text: str) -> tuple[ScopeKind, int]:
    """``KIND:REF``, inside the organisation named by the path (the use case checks that)."""
    match = _SCOPE.fullmatch(text)
    if match is None:
        raise InvalidInput(
            "scope must be KIND:ID with KIND one of organisation, group, project, user (e.g. project:12)", field="scope"
        )
    return ScopeKind(match[1]), int(match[2])


def _decision(condition: Condition | None, reason: str) -> DecisionOut:
    return DecisionOut(condition is not None, condition.value if condition is not None else None, reason)


def explanation_out(explanation: AccessExplanation) -> ExplanationOut:
    scope = f"{explanation.scope.kind.value}:{explanation.scope.ref_id}"
    return ExplanationOut(
        explanation.user_id,
        scope,
        _decision(explanation.read, explanation.read_reason),
        _decision(explanation.write, explanation.write_reason),
    )


def user_out(user: User) -> UserOut:
    return UserOut(user.id, user.email, user.display_name, user.is_server_admin, user.is_active)


def _group_ref(group: Group | None) -> GroupRefOut | None:
    return GroupRefOut(group.id, group.name) if group is not None else None


def _reviewed_user(user: ReviewedUser) -> ReviewedUserOut:
    role = user.effective_role.value if user.effective_role is not None else None
    return ReviewedUserOut(user.user_id, user.email, user.display_name, user.is_active, role)


def _reviewed_grant(reviewed: ReviewedGrant) -> ReviewedGrantOut:
    return ReviewedGrantOut(
        grant_out(reviewed.grant), _group_ref(reviewed.group), [_reviewed_user(u) for u in reviewed.users]
    )


def _deactivated(held: DeactivatedGrant) -> DeactivatedGrantOut:
    return DeactivatedGrantOut(
        held.project.id, held.project.key, grant_out(held.grant), _group_ref(held.group), _reviewed_user(held.user)
    )


def review_out(review: AccessReview) -> AccessReviewOut:
    return AccessReviewOut(
        organisation_out(review.organisation),
        [member_out(m) for m in review.managers],
        [user_out(u) for u in review.server_admins],
        [
            ReviewedProjectOut(project_out(rp.project), [_reviewed_grant(g) for g in rp.grants])
            for rp in review.restricted_projects
        ],
        [_deactivated(d) for d in review.deactivated_grants],
    )


# --- access -----------------------------------------------------------------------------------


@get(
    "/organisations/{org_id:int}/access/explain",
    summary="Why can a user read or write a scope?",
    description="Answers, for read and for write, the rule that grants access (`rule`, e.g. `project_open`, "
    '`project_grant_reads`, `is_org_manager`) and a sentence saying where it comes from ("granted viewer through '
    'group Design"), or why access is denied. `scope` is `KIND:ID` with KIND one of `organisation`, `group`, '
    "`project`, `user` (a user's private scope); a malformed scope is 422 on `scope`. `user_id` defaults to you. "
    "Owners/admins may ask about anyone; any member about themselves (403 otherwise). A group or project of "
    "another organisation, or a project you cannot read, is 404.\n\n"
    "Record-level explanation (by a record's display ID) arrives with records; today this explains the "
    "record's **scope**, which is what decides access to a record.",
    sync_to_thread=True,
)
def explain_access(
    org_id: int, scope_text: ScopeText, caller: NamedDependency[Credential],
    projects: NamedDependency[ProjectUseCases], user_id: int | None = None,
) -> ExplanationOut:
    # ``scope`` is Litestar's reserved name for the ASGI scope, hence the alias.
    kind, ref = parse_scope(scope_text)
    return explanation_out(projects.explain_access(caller, org_id, kind, ref, user_id=user_id))


@get(
    "/organisations/{org_id:int}/access/review",
    summary="Access review (owners/admins)",
    description="Per organisation: its owners and admins, the server admins, every **restricted** project's "
    "grants (direct and through groups, each reached user with their effective role) and every grant still "
    "held by a deactivated user. Open projects are not listed: every member reads and writes them.",
    sync_to_thread=True,
)
def access_review(
    org_id: int, caller: NamedDependency[Credential], projects: NamedDependency[ProjectUseCases],
) -> AccessReviewOut:
    return review_out(projects.access_review(caller, org_id))


# --- server admins ----------------------------------------------------------------------------


@get("/server/admins", summary="Server admins", description="Server admins only (403 otherwise).", sync_to_thread=True)
def list_server_admins(
    caller: NamedDependency[Credential], projects: NamedDependency[ProjectUseCases],
) -> list[UserOut]:
    return [user_out(u) for u in projects.server_admins(caller)]


@put(
    "/server/admins/{user_id:int}",
    summary="Make a user server admin",
    description="Server admins only. Server admin reads and changes server settings and manages server admins; "
    "it grants **no** organisation role. 409 for a deactivated user; 404 for an unknown one. Idempotent.",
    sync_to_thread=True,
)
def grant_server_admin(
    user_id: int, caller: NamedDependency[Credential], projects: NamedDependency[ProjectUseCases],
) -> UserOut:
    return user_out(projects.set_server_admin(caller, user_id, True))


@delete(
    "/server/admins/{user_id:int}",
    summary="Revoke server admin",
    description="Server admins only. Never the last active server admin (409: make someone else server admin first).",
    status_code=HTTP_204_NO_CONTENT,
    sync_to_thread=True,
)
def revoke_server_admin(
    user_id: int, caller: NamedDependency[Credential], projects: NamedDependency[ProjectUseCases],
) -> None:
    projects.set_server_admin(caller, user_id, False)


access_router = Router(path="/api", route_handlers=[explain_access, access_review], tags=["access"])
server_admins_router = Router(
    path="/api", route_handlers=[list_server_admins, grant_server_admin, revoke_server_admin], tags=["server"]
)
