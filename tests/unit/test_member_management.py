"""Deactivating members and the audit of renames (``tow_core.administration``), through the use case objects over
the fakes of tests/unit/records_world.py: Ada owns Acme, Bob and Cy are members; Oscar owns Other.

Attacks: a plain member posting the deactivation, a member id of another organisation, the last owner, an
account that also belongs to an organisation the caller does not manage, a server admin deactivated by a
non-server-admin."""

from __future__ import annotations

import pytest

from tests.unit.test_administration_use_cases import AdminWorld
from tow_core.access import OrgRole
from tow_core.audit import AuditAction, AuditQuery
from tow_core.errors import AccessDenied, Conflict, NotAuthenticated, NotFound


@pytest.fixture
def w() -> AdminWorld:
    return AdminWorld()


def _actions(w: AdminWorld, org_id: int) -> list[tuple[AuditAction, str, dict]]:
    entries, _ = w.directory.audit_entries(org_id, AuditQuery(), cursor=None, limit=50)
    return [(e.action, e.target, dict(e.details)) for e in entries]


def test_deactivating_a_member_ends_every_session_at_once_and_reactivating_lets_them_sign_in_again(w):
    bob_phone, bob_laptop = w.credential("bob"), w.credential("bob")
    member = w.organisations.set_member_active(w.credential("ada"), w.org, w.ids["bob"], False)
    assert member.is_active is False
    for session in (bob_phone, bob_laptop):
        with pytest.raises(NotAuthenticated):
            w.organisations.members(session, w.org)
    assert w.directory.user(w.ids["bob"]).is_active is False
    assert w.directory.group(w.eng).member_ids == (w.ids["bob"],)  # kept: records, groups and grants stay
    action, target, details = _actions(w, w.org)[0]
    assert (action, target, details) == (AuditAction.USER_DEACTIVATED, f"user:{w.ids['bob']}", {"sessions_ended": 2})
    w.organisations.set_member_active(w.credential("ada"), w.org, w.ids["bob"], True)
    assert len(w.organisations.members(w.credential("bob"), w.org)) == 3  # a new sign-in works again
    assert _actions(w, w.org)[0][0] is AuditAction.USER_REACTIVATED


def test_a_plain_member_cannot_deactivate_anyone_and_another_organisations_member_is_not_found(w):
    with pytest.raises(AccessDenied):
        w.organisations.set_member_active(w.credential("bob"), w.org, w.ids["cy"], False)
    with pytest.raises(NotFound):  # Oscar is in Other only: his id in Acme's URL finds nobody
        w.organisations.set_member_active(w.credential("ada"), w.org, w.ids["oscar"], False)
    with pytest.raises(NotFound):  # and Ada is no member of Other
        w.organisations.set_member_active(w.credential("ada"), w.other_org, w.ids["oscar"], False)
    assert all(w.directory.user(w.ids[n]).is_active for n in ("cy", "oscar"))


def test_nobody_deactivates_themselves_or_the_last_owner_and_only_an_owner_deactivates_an_owner(w):
    ada = w.credential("ada")
    with pytest.raises(Conflict):
        w.organisations.set_member_active(ada, w.org, w.ids["ada"], False)
    w.organisations.change_member_role(ada, w.org, w.ids["bob"], OrgRole.ADMIN)
    with pytest.raises(AccessDenied):  # an admin may not take an owner away
        w.organisations.set_member_active(w.credential("bob"), w.org, w.ids["ada"], False)
    w.organisations.change_member_role(ada, w.org, w.ids["cy"], OrgRole.OWNER)
    w.organisations.set_member_active(ada, w.org, w.ids["cy"], False)  # another owner: allowed
    with pytest.raises(Conflict):  # now Ada is the last active owner; Cy reactivated cannot remove her either
        w.organisations.change_member_role(ada, w.org, w.ids["ada"], OrgRole.MEMBER)
    assert w.directory.user(w.ids["ada"]).is_active


def test_an_account_in_an_organisation_the_caller_does_not_manage_can_only_be_removed_from_this_one(w):
    w.directory.set_membership(w.other_org, w.ids["cy"], OrgRole.MEMBER)
    with pytest.raises(AccessDenied) as refused:
        w.organisations.set_member_active(w.credential("ada"), w.org, w.ids["cy"], False)
    assert "remove them from this organisation" in refused.value.message
    assert w.directory.user(w.ids["cy"]).is_active
    w.organisations.remove_member(w.credential("ada"), w.org, w.ids["cy"])  # what she can do instead
    assert w.ids["cy"] not in {m.user_id for m in w.organisations.members(w.credential("ada"), w.org)}


def test_a_server_admin_is_deactivated_only_by_a_server_admin(w):
    w.directory.set_server_admin(w.ids["bob"], True)
    with pytest.raises(AccessDenied):  # Ada owns Acme but is no server admin
        w.organisations.set_member_active(w.credential("ada"), w.org, w.ids["bob"], False)
    assert w.directory.user(w.ids["bob"]).is_active
    w.directory.set_server_admin(w.ids["ada"], True)
    w.organisations.set_member_active(w.credential("ada"), w.org, w.ids["bob"], False)
    assert not w.directory.user(w.ids["bob"]).is_active


def test_renaming_a_group_or_a_project_is_audited_with_both_names(w):
    ada = w.credential("ada")
    w.organisations.rename_group(ada, w.org, w.eng, "Engineering")
    w.projects_.update_project(ada, w.org, w.projects["APP"], name="The app")
    found = _actions(w, w.org)[:2]
    assert found == [(AuditAction.PROJECT_RENAMED, f"project:{w.projects['APP']}",
                      {"old": "APP project", "new": "The app"}),
                     (AuditAction.GROUP_RENAMED, f"group:{w.eng}", {"old": "Eng", "new": "Engineering"})]
