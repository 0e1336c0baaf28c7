"""Rules of the operator's account helpers (`tow users create-admin`, `reset-password`) over the fakes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.fake_tokens import InMemoryAccessTokens
from tests.fakes import FakePasswordHasher, InMemoryDirectory
from tow_core.audit import AuditAction
from tow_core.errors import Conflict, InvalidInput, NotFound
from tow_core.operator_accounts import create_admin_from_shell, reset_password_from_shell, server_admins_for_operator

PASSWORD = "a long operator password"


def never_asked() -> str:
    raise AssertionError("an existing account must not be asked for a password")


def test_the_first_admin_of_a_fresh_server_belongs_to_no_organisation_and_carries_no_hash():
    directory = InMemoryDirectory()
    outcome = create_admin_from_shell(directory, FakePasswordHasher(), email=" Root@Example.COM ",
                                      display_name=None, read_password=lambda: PASSWORD)
    assert outcome.created and outcome.user.is_server_admin and outcome.user.password_hash is None
    assert (outcome.user.email, outcome.user.display_name) == ("root@example.com", "root")
    assert directory.organisations_of(outcome.user.id) == []  # server admin grants no organisation role
    stored = directory.user(outcome.user.id)
    assert stored is not None and FakePasswordHasher().verify(stored.password_hash or "", PASSWORD)
    [entry] = directory.audit_log
    assert (entry.organisation_id, entry.actor_id, entry.action) == (None, None, AuditAction.SERVER_ADMIN_GRANTED)


def test_a_weak_password_creates_nobody():
    directory = InMemoryDirectory()
    with pytest.raises(InvalidInput):
        create_admin_from_shell(directory, FakePasswordHasher(), email="root@example.com", display_name="Root",
                                read_password=lambda: "short")
    assert directory.count_users() == 0 and directory.audit_log == []


def test_with_accounts_it_only_promotes_an_active_existing_account_once():
    directory = InMemoryDirectory()
    hasher = FakePasswordHasher()
    first = directory.add_user("ada@example.com", "Ada", hasher.hash(PASSWORD), server_admin=True)
    bob = directory.add_user("bob@example.com", "Bob", hasher.hash(PASSWORD), server_admin=False)
    with pytest.raises(NotFound):
        create_admin_from_shell(directory, hasher, email="new@example.com", display_name=None,
                                read_password=never_asked)
    outcome = create_admin_from_shell(directory, hasher, email="BOB@example.com", display_name=None,
                                      read_password=never_asked)
    assert not outcome.created and outcome.user.id == bob.id
    create_admin_from_shell(directory, hasher, email="bob@example.com", display_name=None, read_password=never_asked)
    assert [e.target for e in directory.audit_log] == [f"user:{bob.id}"]  # already admin: nothing new to audit
    assert [u.id for u in server_admins_for_operator(directory)] == [first.id, bob.id]
    assert all(u.password_hash is None for u in server_admins_for_operator(directory))

    cy = directory.add_user("cy@example.com", "Cy", None, server_admin=False)
    directory.set_active(cy.id, False)
    with pytest.raises(Conflict):
        create_admin_from_shell(directory, hasher, email="cy@example.com", display_name=None,
                                read_password=never_asked)


def test_reset_password_checks_the_policy_before_touching_the_account():
    directory = InMemoryDirectory()
    hasher = FakePasswordHasher()
    bob = directory.add_user("bob@example.com", "Bob", hasher.hash(PASSWORD), server_admin=False)
    with pytest.raises(InvalidInput):
        reset_password_from_shell(directory, InMemoryAccessTokens(), hasher, email="bob@example.com", password="short", now=datetime.now(UTC))
    assert hasher.verify(directory.user(bob.id).password_hash or "", PASSWORD)
    with pytest.raises(NotFound):
        reset_password_from_shell(directory, InMemoryAccessTokens(), hasher, email="nobody@example.com", password=PASSWORD * 2,
                                  now=datetime.now(UTC))
