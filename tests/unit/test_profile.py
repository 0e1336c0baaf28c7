"""Your own account (``tow_core.profile``) through ``AccountUseCases`` over the fakes: name, email with the current
password, password change that signs out the other sessions and keeps this one; wrong passwords throttled like
sign-ins; every change audited at server level, never with a password."""

from __future__ import annotations

import pytest

from tests.fake_unit_of_work import signed_in
from tests.unit.test_account_use_cases import ADDRESS, PASSWORD, Server
from tow_core.audit import AuditAction, AuditQuery
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotAuthenticated, Throttled

NEW_PASSWORD = "a much longer new passphrase"


@pytest.fixture
def server() -> Server:
    return Server()


def _sessions(server: Server, count: int) -> list:
    """``count`` sessions of Ada's (the first one is the first account's own)."""
    first = server.credential(server.first().token)
    return [first] + [server.credential(server.accounts.sign_in(email="ada@example.com", password=PASSWORD,
                                                      client_ip=ADDRESS).token) for _ in range(count - 1)]


def _audit(server: Server) -> list:
    return server.directory.audit_entries(None, AuditQuery(), cursor=None, limit=20)[0]


def test_a_display_name_changes_without_a_password_and_is_audited_with_both_names(server):
    [here] = _sessions(server, 1)
    account = server.accounts.change_profile(here, display_name="  Ada Lovelace ", email=None, current_password="",
                                             client_ip=ADDRESS)
    assert account.user.display_name == "Ada Lovelace" and account.user.password_hash is None
    entry = _audit(server)[0]
    assert (entry.action, dict(entry.details)) == (AuditAction.USER_PROFILE_CHANGED,
                                                   {"old_name": "Ada", "new_name": "Ada Lovelace"})
    with pytest.raises(InvalidInput) as refused:
        server.accounts.change_profile(here, display_name="  ", email=None, current_password="", client_ip=ADDRESS)
    assert refused.value.field == "display_name"


def test_a_new_email_needs_the_current_password_and_must_be_nobody_elses(server):
    [here] = _sessions(server, 1)
    for wrong in ("", "not my password"):
        with pytest.raises(InvalidInput) as refused:
            server.accounts.change_profile(here, display_name=None, email="ada@new.example",
                                           current_password=wrong, client_ip=ADDRESS)
        assert refused.value.field == "current_password"
    assert server.directory.user_by_email("ada@example.com") is not None  # unchanged
    server.directory.add_user("bob@example.com", "Bob", None, server_admin=False)
    with pytest.raises(Conflict):
        server.accounts.change_profile(here, display_name=None, email="Bob@Example.com", current_password=PASSWORD,
                                       client_ip=ADDRESS)
    account = server.accounts.change_profile(here, display_name=None, email="Ada@New.Example",
                                             current_password=PASSWORD, client_ip=ADDRESS)
    assert account.user.email == "ada@new.example"
    assert server.accounts.sign_in(email="ada@new.example", password=PASSWORD, client_ip=ADDRESS)
    assert dict(_audit(server)[0].details) == {"old_email": "ada@example.com", "new_email": "ada@new.example"}


def test_a_password_change_signs_out_the_other_sessions_and_keeps_this_one(server):
    here, phone, laptop = _sessions(server, 3)
    assert server.accounts.change_password(here, current_password=PASSWORD, new_password=NEW_PASSWORD,
                                           client_ip=ADDRESS) == 2
    assert server.accounts.me(here).user.display_name == "Ada"  # still signed in
    for other in (phone, laptop):
        with pytest.raises(NotAuthenticated):
            server.accounts.me(other)
    with pytest.raises(NotAuthenticated):  # the old password is gone
        server.accounts.sign_in(email="ada@example.com", password=PASSWORD, client_ip=ADDRESS)
    assert server.accounts.sign_in(email="ada@example.com", password=NEW_PASSWORD, client_ip=ADDRESS)
    entry = next(e for e in _audit(server) if e.action is AuditAction.USER_PASSWORD_CHANGED)
    assert dict(entry.details) == {"other_sessions_signed_out": 2}  # no password, no hash


def test_a_wrong_current_or_too_short_new_password_changes_nothing_and_names_the_field(server):
    here, other = _sessions(server, 2)
    with pytest.raises(InvalidInput) as wrong:
        server.accounts.change_password(here, current_password="guess", new_password=NEW_PASSWORD, client_ip=ADDRESS)
    assert (wrong.value.field, wrong.value.message) == ("current_password", "your current password is wrong")
    with pytest.raises(InvalidInput) as short:
        server.accounts.change_password(here, current_password=PASSWORD, new_password="short", client_ip=ADDRESS)
    assert short.value.field == "new_password" and "at least 10 characters" in short.value.message
    assert server.accounts.me(other)  # nobody was signed out
    assert server.accounts.sign_in(email="ada@example.com", password=PASSWORD, client_ip=ADDRESS)


def test_guessing_the_current_password_is_throttled_like_sign_in(server):
    [here] = _sessions(server, 1)
    for _ in range(5):
        with pytest.raises(InvalidInput):
            server.accounts.change_password(here, current_password="guess", new_password=NEW_PASSWORD,
                                            client_ip=ADDRESS)
    with pytest.raises(Throttled):  # even the right password now waits, as a sign-in would
        server.accounts.change_password(here, current_password=PASSWORD, new_password=NEW_PASSWORD,
                                        client_ip=ADDRESS)


def test_with_single_sign_on_the_email_belongs_to_the_provider_and_a_passwordless_account_has_none_to_change(server):
    [here] = _sessions(server, 1)
    with pytest.raises(AccessDenied):
        server.sso_accounts.change_profile(here, display_name=None, email="ada@new.example",
                                           current_password=PASSWORD, client_ip=ADDRESS)
    bob = server.directory.add_user("bob@example.com", "Bob", None, server_admin=False)  # single sign-on only
    bob_session = signed_in(server.directory, bob.id, server.accounts.transactions.clock())
    with pytest.raises(AccessDenied):
        server.accounts.change_password(bob_session, current_password="", new_password=NEW_PASSWORD,
                                        client_ip=ADDRESS)
