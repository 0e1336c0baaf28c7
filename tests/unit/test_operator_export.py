"""Which export `tow export` writes (``tow_core.exports.operator_export``): an organisation by id or by name
(any case; an ambiguous name is refused naming the ids), or the member export of one of its active
members; anything else is refused naming the option, before anything is read."""

from __future__ import annotations

import pytest

from tests.fakes import InMemoryDirectory
from tow_core.access import OrgRole
from tow_core.errors import Conflict, NotFound
from tow_core.exports import ExportKind, ExportSubject, operator_export
from tow_core.identity import WorkflowMode


@pytest.fixture
def directory() -> InMemoryDirectory:
    d = InMemoryDirectory()
    acme = d.add_organisation("Acme", WorkflowMode.FOUNDER)
    d.add_organisation("Other", WorkflowMode.FOUNDER)
    for name, active in (("bob", True), ("dee", False), ("out", True)):
        user = d.add_user(f"{name}@example.com", name.title(), None, server_admin=False)
        if name != "out":
            d.set_membership(acme.id, user.id, OrgRole.MEMBER)
        d.set_active(user.id, active)
    return d


def test_an_organisation_by_id_or_by_name_in_any_case(directory):
    by_id = operator_export(directory, organisation="1", member_email=None)
    by_name = operator_export(directory, organisation=" aCmE ", member_email=None, include_attachment_contents=True)
    assert by_id.subject == ExportSubject(1, ExportKind.ORGANISATION, None, False)
    assert by_name.subject == ExportSubject(1, ExportKind.ORGANISATION, None, True)
    assert by_name.organisation.name == "Acme" and by_name.member is None


def test_a_name_two_organisations_share_is_refused_with_their_ids(directory):
    directory.add_organisation("ACME", WorkflowMode.FOUNDER)
    with pytest.raises(Conflict, match=r"2 organisations are named 'acme': give the id of one \(1, 3\)") as refused:
        operator_export(directory, organisation="acme", member_email=None)
    assert refused.value.field == "organisation"
    assert operator_export(directory, organisation="3", member_email=None).organisation.name == "ACME"


def test_a_member_export_reads_as_that_member(directory):
    bob = directory.user_by_email("bob@example.com")
    export = operator_export(directory, organisation="Acme", member_email="Bob@Example.com ")
    assert export.subject == ExportSubject(1, ExportKind.MEMBER, bob.id, False) and export.member == bob


@pytest.mark.parametrize(("organisation", "email", "error", "field", "message"), [
    ("Globex", None, NotFound, "organisation", "no organisation has the id or name 'Globex'"),
    ("42", None, NotFound, "organisation", "no organisation has the id or name '42'"),
    ("Acme", "nobody@example.com", NotFound, "member", "no account has the email 'nobody@example.com'"),
    ("Acme", "out@example.com", NotFound, "member", "out@example.com is not a member of organisation 'Acme'"),
    ("Other", "bob@example.com", NotFound, "member", "bob@example.com is not a member of organisation 'Other'"),
    ("Acme", "dee@example.com", Conflict, "member", "dee@example.com is deactivated"),
])
def test_what_cannot_be_exported_is_refused_naming_the_option(directory, organisation, email, error, field, message):
    with pytest.raises(error, match=message) as refused:
        operator_export(directory, organisation=organisation, member_email=email)
    assert refused.value.field == field
