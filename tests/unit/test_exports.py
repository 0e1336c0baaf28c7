"""Exports over the in-memory fakes and the real export file store in tmp (SPEC §5; rules in
``tow_core.exports``): who may request which kind, only the requester lists and downloads, downloads audited
and refused once access shrank, the file streamed and written whole or not at all, expiry. Which access
changes refuse a download is table-tested on ``ExportRequest.refusal`` in test_export_refusal.py; here the
use cases are driven through the directory."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_exports import InMemoryExportStore, InMemoryJobQueue
from tests.fakes import InMemoryDirectory
from tow_adapters.fs_export_files import FsExportFiles
from tow_core import exports
from tow_core.access import OrgRole, ProjectRole, Scope, Visibility
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.exports import ExportKind, Refusal
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.jobs import JobStatus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RETENTION = timedelta(hours=48)
MEMBER, ORGANISATION = ExportKind.MEMBER, ExportKind.ORGANISATION


class ListSource:
    """An ``ExportSource`` over given sections; ``scopes`` is what the rows it yields carry."""

    def __init__(self, sections, scopes=frozenset(), header=None) -> None:
        self._sections, self._scopes, self._header = sections, frozenset(scopes), header or {"organisation": "Acme"}

    def header(self, request):
        return self._header

    def sections(self, request):
        return iter(self._sections)

    def scopes(self, request):
        return self._scopes

    def count(self, subject):
        return sum(len(list(items)) for _, items in self._sections if isinstance(items, list))


class World:
    """Ada owns Acme, Adam is its admin, Mia a member in group Eng with a viewer grant on the restricted
    project SEC; OPS is open. Oscar owns Other. Principals are reloaded on every call, as a request would."""

    def __init__(self, tmp_path) -> None:
        d = self.directory = InMemoryDirectory(lambda: NOW)
        self.ids = {n: d.add_user(f"{n}@example.com", n.title(), None, server_admin=False).id
                    for n in ("ada", "adam", "mia", "oscar")}
        self.org = d.add_organisation("Acme", WorkflowMode.ORGANIZATION).id
        self.other = d.add_organisation("Other", WorkflowMode.FOUNDER).id
        for name, role in (("ada", OrgRole.OWNER), ("adam", OrgRole.ADMIN), ("mia", OrgRole.MEMBER)):
            d.set_membership(self.org, self.ids[name], role)
        d.set_membership(self.other, self.ids["oscar"], OrgRole.OWNER)
        self.eng = d.add_group(self.org, "Eng").id
        d.add_group_member(self.eng, self.ids["mia"])
        self.sec, self.ops = (d.add_project(Project(0, self.org, key, key, "", None, visibility,
                                                    ProjectStatus.ACTIVE)).id
                              for key, visibility in (("SEC", Visibility.RESTRICTED), ("OPS", Visibility.OPEN)))
        d.put_grant(self.sec, user_id=self.ids["mia"], group_id=None, role=ProjectRole.VIEWER)
        self.jobs = InMemoryJobQueue()
        self.exports = InMemoryExportStore(self.jobs)
        self.files = FsExportFiles(tmp_path / "exports")

    def p(self, name: str):
        return self.directory.principal(self.ids[name])

    def request(self, name: str, kind: ExportKind = MEMBER, *, org_id: int | None = None, now: datetime = NOW,
                **options):
        return exports.request_export(self.directory, self.exports, self.jobs, self.p(name), org_id=org_id or self.org,
                                      kind=kind, now=now, retention=RETENTION, **options)

    def complete(self, request, scopes=(), sections=(("records", [{"title": "Plan"}]),), *, now: datetime = NOW):
        """What the worker does: write the file, record it as ready, complete the job."""
        written = exports.produce_export(request, ListSource(list(sections), scopes), self.files)
        self.exports.mark_ready(request.id, file_name=written.file_name, size_bytes=written.size_bytes,
                                scopes=written.scopes, now=now, expires_at=now + RETENTION)
        self.jobs.finish(request.job_id, JobStatus.COMPLETED)
        return self.exports.get(request.id)

    def download(self, name: str, export_id: int):
        return exports.export_for_download(self.directory, self.exports, self.p(name), export_id=export_id)

    def audited(self, action: AuditAction):
        return [e for e in self.directory.audit_log if e.action is action]


@pytest.fixture
def w(tmp_path) -> World:
    return World(tmp_path)


# --- requesting ---------------------------------------------------------------------------------------------


REQUESTS = [
    ("mia", MEMBER, None),
    ("adam", MEMBER, None),
    ("ada", ORGANISATION, None),
    ("adam", ORGANISATION, None),
    ("mia", ORGANISATION, AccessDenied),  # the whole organisation is for owners and admins
    ("oscar", MEMBER, NotFound),  # not a member: Acme does not exist for him
    ("oscar", ORGANISATION, NotFound),
]


@pytest.mark.parametrize(("who", "kind", "error"), REQUESTS,
                         ids=[f"{who}-{kind.value}-{error.__name__ if error else 'queued'}"
                              for who, kind, error in REQUESTS])
def test_members_request_their_export_and_owners_and_admins_the_organisations(w, who, kind, error):
    if error is not None:
        with pytest.raises(error):
            w.request(who, kind)
        assert (w.jobs.jobs, w.exports.rows, w.directory.audit_log) == ({}, {}, [])
        return
    request = w.request(who, kind, include_attachment_contents=True)
    assert (request.requested_by, request.kind, request.status, request.file_name) == (
        w.ids[who], kind, JobStatus.QUEUED, None)
    assert request.expires_at == NOW + RETENTION and request.include_attachment_contents
    job = w.jobs.jobs[request.job_id]
    assert (job.kind, job.organisation_id, job.requested_by) == (exports.EXPORT_JOB, w.org, w.ids[who])
    [entry] = w.directory.audit_log
    assert (entry.action, entry.actor_id, entry.target, dict(entry.details)) == (
        AuditAction.EXPORT_REQUESTED, w.ids[who], f"export:{request.id}",
        {"kind": kind.value, "attachment_contents": True})


def test_a_deactivated_member_requests_nothing(w):
    w.directory.set_active(w.ids["mia"], False)
    with pytest.raises(NotFound):
        w.request("mia")


@pytest.mark.parametrize(("text", "kind"), [("member", MEMBER), ("organisation", ORGANISATION)])
def test_the_kind_is_member_or_organisation(text, kind):
    assert exports.parse_kind(text) is kind


@pytest.mark.parametrize("text", ["organization", "org", "Member", ""])
def test_any_other_kind_is_refused(text):
    with pytest.raises(InvalidInput) as refused:
        exports.parse_kind(text)
    assert refused.value.field == "kind"


# --- listing and downloading one's own ----------------------------------------------------------------------


def test_only_the_requester_lists_an_export_newest_first(w):
    first = w.request("mia")
    second = w.request("mia", now=NOW + timedelta(minutes=1))
    w.request("ada", ORGANISATION)
    mine = exports.list_own_exports(w.directory, w.exports, w.p("mia"))
    assert [(e.request.id, e.refusal) for e in mine] == [(second.id, None), (first.id, None)]
    assert [e.request.requested_by for e in exports.list_own_exports(w.directory, w.exports, w.p("ada"))] == [
        w.ids["ada"]]


@pytest.mark.parametrize("who", ["ada", "adam", "oscar"], ids=["organisation-owner", "admin", "outsider"])
def test_nobody_but_the_requester_sees_or_downloads_an_export(w, who):
    request = w.complete(w.request("mia"))
    with pytest.raises(NotFound):
        exports.own_export(w.directory, w.exports, w.p(who), request.id)
    with pytest.raises(NotFound):
        w.download(who, request.id)
    assert w.audited(AuditAction.EXPORT_DOWNLOADED) == w.audited(AuditAction.EXPORT_DOWNLOAD_REFUSED) == []


def test_an_unknown_export_is_not_found(w):
    with pytest.raises(NotFound):
        w.download("mia", 10**9)


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED])
def test_an_export_that_is_not_written_is_not_ready_for_download(w, status):
    request = w.request("mia")
    w.jobs.finish(request.job_id, status, error="disk full" if status is JobStatus.FAILED else None)
    with pytest.raises(Conflict) as refused:
        w.download("mia", request.id)
    assert status.value in str(refused.value)
    assert w.audited(AuditAction.EXPORT_DOWNLOADED) == []


def test_a_completed_export_downloads_for_its_requester_and_the_download_is_audited(w):
    request = w.complete(w.request("mia"), scopes={Scope.organisation(w.org), Scope.project(w.org, w.sec)})
    download = w.download("mia", request.id)
    assert download.refused is None and download.request.file_name == request.file_name
    with w.files.open(request.file_name) as stored:
        assert json.load(stored)["records"] == [{"title": "Plan"}]
    [entry] = w.audited(AuditAction.EXPORT_DOWNLOADED)
    assert (entry.actor_id, entry.target, entry.details["size_bytes"]) == (
        w.ids["mia"], f"export:{request.id}", request.size_bytes)


# --- refused once access shrank (through the directory, as a request would see it) -----------------------


def _revoke_grant(w):
    w.directory.delete_grant(w.directory.grants(w.sec)[0].id)


def _leave_group(w):
    w.directory.remove_group_member(w.eng, w.ids["mia"])


def _restrict_ops(w):
    w.directory.update_project(Project(w.ops, w.org, "OPS", "OPS", "", None, Visibility.RESTRICTED,
                                       ProjectStatus.ACTIVE))


def _remove_member(w):
    w.directory.remove_membership(w.org, w.ids["mia"])


SHRINKS = [
    ("project-grant-revoked", _revoke_grant, Refusal.ACCESS_SHRANK),
    ("left-the-group", _leave_group, Refusal.ACCESS_SHRANK),
    ("open-project-made-restricted", _restrict_ops, Refusal.ACCESS_SHRANK),
    ("removed-from-the-organisation", _remove_member, Refusal.LEFT_ORGANISATION),
]


@pytest.mark.parametrize(("change", "shrink", "refusal"), SHRINKS, ids=[s[0] for s in SHRINKS])
def test_a_download_is_refused_audited_and_explained_once_access_to_what_it_holds_shrank(w, change, shrink,
                                                                                           refusal):
    holds = {Scope.organisation(w.org), Scope.project(w.org, w.sec), Scope.group(w.org, w.eng),
             Scope.project(w.org, w.ops), Scope.private(w.org, w.ids["mia"])}
    request = w.complete(w.request("mia"), scopes=holds)
    shrink(w)
    download = w.download("mia", request.id)
    assert isinstance(download.refused, NotFound) and refusal.message in str(download.refused)
    [entry] = w.audited(AuditAction.EXPORT_DOWNLOAD_REFUSED)
    assert (entry.actor_id, entry.details["reason"]) == (w.ids["mia"], refusal.value)
    assert w.audited(AuditAction.EXPORT_DOWNLOADED) == []
    [listed] = exports.list_own_exports(w.directory, w.exports, w.p("mia"))
    assert listed.refusal is refusal


def test_access_that_shrank_outside_what_the_export_holds_changes_nothing(w):
    request = w.complete(w.request("mia"), scopes={Scope.organisation(w.org)})
    _revoke_grant(w)
    _leave_group(w)
    assert w.download("mia", request.id).refused is None


def test_an_organisation_export_is_refused_once_its_requester_is_no_longer_owner_or_admin(w):
    request = w.complete(w.request("adam", ORGANISATION), scopes={Scope.organisation(w.org)})
    w.directory.set_membership(w.org, w.ids["adam"], OrgRole.MEMBER)
    refused = w.download("adam", request.id).refused
    assert refused is not None and Refusal.NO_LONGER_MANAGER.message in str(refused)
    assert w.audited(AuditAction.EXPORT_DOWNLOAD_REFUSED)[0].details["reason"] == Refusal.NO_LONGER_MANAGER.value


# --- producing the file ---------------------------------------------------------------------------------------


def test_the_file_is_versioned_json_with_every_section_and_records_the_scopes_it_holds(w):
    request = w.request("mia")
    held = {Scope.organisation(w.org), Scope.private(w.org, w.ids["mia"])}
    sections = [("records", [{"title": "Café ☕", "at": NOW}, {"title": "Two"}]), ("memory_diffs", [])]
    written = exports.produce_export(request, ListSource(sections, held, {"organisation": "Acme"}), w.files)
    assert written.scopes == held and written.size_bytes == w.files.size(written.file_name)
    with w.files.open(written.file_name) as stored:
        raw = stored.read().decode()
    assert "Café ☕" in raw  # not \u-escaped
    assert json.loads(raw) == {"format": exports.FORMAT, "version": exports.VERSION, "organisation": "Acme",
                               "records": [{"title": "Café ☕", "at": NOW.isoformat()}, {"title": "Two"}],
                               "memory_diffs": []}


def test_the_file_name_is_chosen_by_the_server_and_unguessable(w):
    request = w.request("mia")
    names = {exports.new_file_name(request) for _ in range(20)}
    assert len(names) == 20
    assert all(n.startswith(f"export-{request.id}-") and n.endswith(".json") for n in names)


def test_a_file_that_fails_half_way_is_never_visible(w, tmp_path):
    request = w.request("mia")

    def rows():
        yield {"title": "one"}
        raise RuntimeError("the snapshot went away")

    with pytest.raises(RuntimeError):
        exports.produce_export(request, ListSource([("records", rows())]), w.files)
    assert [p.name for p in (tmp_path / "exports").iterdir() if not p.name.startswith(".")] == []


def test_the_document_is_written_one_item_at_a_time():
    out = io.StringIO()
    seen_before_next = []

    def rows():
        for n in range(3):
            seen_before_next.append(out.getvalue().count('"n"'))
            yield {"n": n}

    exports.write_document({"format": "x"}, [("rows", rows())], out)
    assert seen_before_next == [0, 1, 2]  # each item was on the page before the next was read
    assert json.loads(out.getvalue()) == {"format": "x", "rows": [{"n": 0}, {"n": 1}, {"n": 2}]}


def test_a_value_json_cannot_hold_stops_the_document():
    with pytest.raises(TypeError):
        exports.write_document({}, [("rows", [{"bad": object()}])], io.StringIO())


# --- expiry -----------------------------------------------------------------------------------------------


def test_expired_exports_are_deleted_file_and_row_and_the_rest_kept(w):
    old = w.complete(w.request("mia"))
    never_written = w.request("ada", ORGANISATION)
    fresh = w.complete(w.request("mia", now=NOW + timedelta(hours=47)), now=NOW + timedelta(hours=47))
    later = NOW + RETENTION
    assert exports.sweep_expired(w.exports, w.files, now=later) == 2
    assert set(w.exports.rows) == {fresh.id}
    with pytest.raises(NotFound):
        w.files.open(old.file_name)
    w.files.open(fresh.file_name).close()
    assert exports.sweep_expired(w.exports, w.files, now=later) == 0
    assert never_written.id not in w.exports.rows
