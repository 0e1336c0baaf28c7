"""A workspace exists only for an active member of its organisation (SPEC §2: deny by default, 404)."""

from __future__ import annotations

import pytest

from tests.fake_records import InMemoryRecordStore
from tests.fakes import InMemoryDirectory
from tow_core.access import OrgRole, Principal
from tow_core.errors import NotFound
from tow_core.knowledge import Workspace


def principal(*, active: bool = True, orgs: dict[int, OrgRole] | None = None, server_admin: bool = False):
    return Principal(user_id=7, is_active=active, is_server_admin=server_admin,
                     org_roles=orgs if orgs is not None else {1: OrgRole.MEMBER}, group_ids=frozenset(),
                     direct_grants={}, group_grants={})


def workspace(who: Principal, org_id: int) -> Workspace:
    directory = InMemoryDirectory()
    return Workspace.for_member(InMemoryRecordStore(directory), directory, who, org_id)


@pytest.mark.parametrize("role", list(OrgRole))
def test_every_active_member_gets_their_workspace(role):
    assert workspace(principal(orgs={1: role}), 1).org_id == 1


@pytest.mark.parametrize(("who", "org_id"), [
    pytest.param(principal(), 2, id="member-of-another-organisation"),
    pytest.param(principal(active=False), 1, id="deactivated-member"),
    pytest.param(principal(orgs={}, server_admin=True), 1, id="server-admin-without-membership"),
])
def test_anyone_else_is_told_the_organisation_does_not_exist(who, org_id):
    with pytest.raises(NotFound, match="organisation not found"):
        workspace(who, org_id)
