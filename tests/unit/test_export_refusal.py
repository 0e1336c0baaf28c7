"""``ExportRequest.refusal``: a finished export is downloadable only while its requester can still read every
scope it holds (SPEC §2 immediate revocation, exports included), table-driven over the kinds of revocation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tow_core.access import OrgRole, Principal, ProjectAccess, ProjectRole, Scope, Visibility
from tow_core.exports import ExportKind, ExportRequest, Refusal
from tow_core.jobs import JobStatus

ORG, ADA, GROUP, OPEN, RESTRICTED = 1, 7, 30, 40, 41
NOW = datetime(2026, 3, 1, tzinfo=UTC)
PROJECTS = {OPEN: ProjectAccess(OPEN, ORG, Visibility.OPEN), RESTRICTED: ProjectAccess(RESTRICTED, ORG,
                                                                                        Visibility.RESTRICTED)}
HOLDS_EVERYTHING = frozenset({Scope.organisation(ORG), Scope.group(ORG, GROUP), Scope.project(ORG, OPEN),
                              Scope.project(ORG, RESTRICTED), Scope.private(ORG, ADA)})


def export(kind: ExportKind = ExportKind.MEMBER, scopes: frozenset[Scope] | None = HOLDS_EVERYTHING,
           file_name: str | None = "export-1-ab.json") -> ExportRequest:
    return ExportRequest(1, ORG, ADA, kind, 1, JobStatus.COMPLETED, None, file_name, 10, NOW, NOW, NOW,
                         scopes=scopes)


def ada(**changes) -> Principal:
    base = {"org_roles": {ORG: OrgRole.MEMBER}, "group_ids": {GROUP}, "direct_grants": {RESTRICTED: ProjectRole.VIEWER}}
    return Principal.build(ADA, **(base | changes))


CASES = [
    ("unchanged", ada(), PROJECTS, None),
    ("access grew: now an admin", ada(org_roles={ORG: OrgRole.ADMIN}), PROJECTS, None),
    ("restricted grant now through a group", ada(direct_grants={}, group_grants={RESTRICTED: ProjectRole.MEMBER}),
     PROJECTS, None),
    ("left the group", ada(group_ids=set()), PROJECTS, Refusal.ACCESS_SHRANK),
    ("lost the restricted grant", ada(direct_grants={}), PROJECTS, Refusal.ACCESS_SHRANK),
    ("open project became restricted", ada(),
     PROJECTS | {OPEN: ProjectAccess(OPEN, ORG, Visibility.RESTRICTED)}, Refusal.ACCESS_SHRANK),
    ("a project it holds is gone", ada(), {RESTRICTED: PROJECTS[RESTRICTED]}, Refusal.ACCESS_SHRANK),
    ("removed from the organisation", ada(org_roles={}), PROJECTS, Refusal.LEFT_ORGANISATION),
    ("deactivated", ada(is_active=False), PROJECTS, Refusal.LEFT_ORGANISATION),
]


@pytest.mark.parametrize(("change", "principal", "projects", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_member_export_is_refused_exactly_when_a_scope_it_holds_is_no_longer_readable(change, principal,
                                                                                      projects, expected):
    assert export().refusal(principal, projects) is expected


def test_only_the_scopes_the_file_holds_count():
    organisation_only = export(scopes=frozenset({Scope.organisation(ORG)}))
    assert organisation_only.refusal(ada(group_ids=set(), direct_grants={}), {}) is None


def test_an_organisation_export_needs_its_requester_to_stay_owner_or_admin():
    whole = export(ExportKind.ORGANISATION, frozenset({Scope.organisation(ORG), Scope.group(ORG, GROUP)}))
    assert whole.refusal(ada(org_roles={ORG: OrgRole.OWNER}), PROJECTS) is None
    assert whole.refusal(ada(org_roles={ORG: OrgRole.MEMBER}), PROJECTS) is Refusal.NO_LONGER_MANAGER


def test_an_unwritten_export_is_not_refused_and_one_without_recorded_scopes_is():
    assert export(scopes=None, file_name=None).refusal(ada(), PROJECTS) is None
    assert export(scopes=None).refusal(ada(), PROJECTS) is Refusal.NOT_RECORDED


def test_every_refusal_says_to_request_a_new_export():
    assert all(r.message.endswith("request a new one") for r in Refusal)
    assert replace(export(), scopes=frozenset()).refusal(ada(), {}) is None
