"""The use case objects front doors call for exports and imports (``tow_core.use_cases.exports``), over the
in-memory fakes and the real export file store in tmp: each call loads the caller fresh (revocation is
immediate), checks membership or server admin, and commits or rolls back as one; the job worker's export
job and expiry sweep; an import streamed with no unit of work open. The rules themselves are tested in
test_exports.py."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_exports import InMemoryExportStore, InMemoryJobQueue
from tests.fake_records import InMemoryRecordStore
from tests.fake_unit_of_work import fake_transactions, signed_in, with_inbox
from tests.fake_uploads import InMemoryUploadRecords
from tests.fakes import InMemoryDirectory
from tow_adapters.fs_export_files import FsExportFiles
from tow_core.access import OrgRole, Scope
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotAuthenticated, NotFound, PayloadTooLarge
from tow_core.exports import ExportKind, Refusal
from tow_core.identity import WorkflowMode
from tow_core.imports import ImportReport
from tow_core.jobs import Job, JobStatus
from tow_core.unit_of_work import SessionCredential
from tow_core.use_cases import exports as use_cases
from tow_core.use_cases.exports import ExportJobs, ExportUseCases, ImportUseCases

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RETENTION = timedelta(hours=48)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Source:
    """An ``ExportSource`` of one record in the organisation scope."""

    def __init__(self, org_id: int) -> None:
        self.scope = Scope.organisation(org_id)

    def header(self, request):
        return {"organisation": "Acme"}

    def sections(self, request):
        return iter([("records", [{"title": "Plan"}])])

    def scopes(self, request):
        return frozenset({self.scope})

    def count(self, subject):
        return 1


class Importer:
    """An ``OrganisationImport`` that reads the whole file and restores "Globex", or refuses as told after it
    created a person (the refusal must leave nothing behind)."""

    def __init__(self, directory: InMemoryDirectory) -> None:
        self.directory = directory
        self.restored: list[bytes] = []
        self.refuse: Exception | None = None

    def restore(self, file, *, upload_store, images, progress=None) -> ImportReport:
        content = file.read()
        if self.refuse is not None:
            self.directory.add_user("imported@example.com", "Imported", None, server_admin=False)
            raise self.refuse
        self.restored.append(content)
        return ImportReport(99, "Globex", {"records": 1})


class World:
    """Ada owns Acme, Mia is a member of it, Oscar owns Other; Sam is a server admin in no organisation."""

    def __init__(self, tmp_path) -> None:
        self.clock = Clock()
        d = self.directory = InMemoryDirectory(self.clock)
        self.ids = {n: d.add_user(f"{n}@example.com", n.title(), None, server_admin=n == "sam").id
                    for n in ("ada", "mia", "oscar", "sam")}
        self.org = d.add_organisation("Acme", WorkflowMode.ORGANIZATION).id
        self.other = d.add_organisation("Other", WorkflowMode.FOUNDER).id
        d.set_membership(self.org, self.ids["ada"], OrgRole.OWNER)
        d.set_membership(self.org, self.ids["mia"], OrgRole.MEMBER)
        d.set_membership(self.other, self.ids["oscar"], OrgRole.OWNER)
        self.records = InMemoryRecordStore(d, self.clock)
        self.uploads = InMemoryUploadRecords(d, self.records, self.clock)
        self.jobs = InMemoryJobQueue()
        self.exports = InMemoryExportStore(self.jobs)
        self.importer = Importer(d)
        self.files = FsExportFiles(tmp_path / "exports")
        self.transactions = fake_transactions(
            self.clock, rollback=(self.directory, self.jobs, self.exports), **with_inbox(
                self.clock, directory=d, records=self.records, uploads=self.uploads, jobs=self.jobs,
                exports=self.exports, organisation_import=self.importer))
        self.use_cases = ExportUseCases(self.transactions, self.files, RETENTION)
        self.imports = ImportUseCases(self.transactions, None, None)

        @contextmanager
        def snapshot(exported_at):
            yield Source(self.org)

        self.worker = ExportJobs(self.transactions, snapshot, self.files, RETENTION)

    def credential(self, name: str) -> SessionCredential:
        return signed_in(self.directory, self.ids[name], self.clock())

    def audited(self, action: AuditAction):
        return [e for e in self.directory.audit_log if e.action is action]

    def job(self, export) -> Job:
        return self.jobs.jobs[export.request.job_id]

    def finish(self, export) -> None:
        """What the worker does: run the export job, then complete it."""
        self.worker.run(self.job(export))
        self.jobs.finish(export.request.job_id, JobStatus.COMPLETED)


@pytest.fixture
def w(tmp_path) -> World:
    return World(tmp_path)


# --- exports -------------------------------------------------------------------------------------------


def test_a_member_requests_an_export_which_only_they_list_and_see(w):
    mia = w.credential("mia")
    own = w.use_cases.request(mia, w.org, "member", include_attachment_contents=True)
    assert (own.request.requested_by, own.request.kind, own.request.status, own.refusal) == (
        w.ids["mia"], ExportKind.MEMBER, JobStatus.QUEUED, None)
    assert own.request.expires_at == NOW + RETENTION and own.request.include_attachment_contents
    assert [e.request.id for e in w.use_cases.mine(mia)] == [own.request.id]
    assert w.use_cases.get(mia, own.request.id).request == own.request
    ada = w.credential("ada")
    assert w.use_cases.mine(ada) == []
    with pytest.raises(NotFound):  # the owner of the organisation does not see a member's export
        w.use_cases.get(ada, own.request.id)


@pytest.mark.parametrize(("who", "kind", "error"), [
    ("oscar", "member", NotFound),  # not a member: Acme does not exist for him
    ("mia", "organisation", AccessDenied),  # the whole organisation is for owners and admins
    ("mia", "everything", InvalidInput),
])
def test_a_refused_request_leaves_no_job_no_export_and_no_audit_entry(w, who, kind, error):
    with pytest.raises(error):
        w.use_cases.request(w.credential(who), w.org, kind)
    assert (w.jobs.jobs, w.exports.rows, w.directory.audit_log) == ({}, {}, [])


def test_a_forged_revoked_or_deactivated_caller_is_not_authenticated(w):
    with pytest.raises(NotAuthenticated):
        w.use_cases.mine(SessionCredential("forged"))
    mia = w.credential("mia")
    w.directory.revoke_session(mia.token_hash, NOW)
    with pytest.raises(NotAuthenticated):
        w.use_cases.request(mia, w.org, "member")
    ada = w.credential("ada")
    w.directory.set_active(w.ids["ada"], False)
    with pytest.raises(NotAuthenticated):
        w.use_cases.page(ada, w.org, None)
    assert w.exports.rows == {}


def test_the_worker_writes_the_file_records_it_ready_and_the_requester_downloads_it(w):
    mia = w.credential("mia")
    own = w.use_cases.request(mia, w.org, "member")
    w.clock.now = NOW + timedelta(minutes=5)
    w.finish(own)
    ready = w.use_cases.get(mia, own.request.id).request
    assert ready.completed_at == NOW + timedelta(minutes=5) and ready.expires_at == ready.completed_at + RETENTION
    assert ready.scopes == {Scope.organisation(w.org)}
    w.worker.run(w.job(own))  # claimed again after a lost lease: the file is not written twice
    assert w.use_cases.get(mia, own.request.id).request.file_name == ready.file_name

    download = w.use_cases.download(mia, own.request.id)
    with download.file as file:
        assert json.load(file)["records"] == [{"title": "Plan"}]
    assert (download.download_name, download.size_bytes) == (ready.download_name, ready.size_bytes)
    [entry] = w.audited(AuditAction.EXPORT_DOWNLOADED)
    assert (entry.actor_id, entry.target) == (w.ids["mia"], f"export:{own.request.id}")


def test_a_download_before_the_file_is_written_is_a_conflict(w):
    mia = w.credential("mia")
    own = w.use_cases.request(mia, w.org, "member")
    with pytest.raises(Conflict):
        w.use_cases.download(mia, own.request.id)
    assert w.audited(AuditAction.EXPORT_DOWNLOADED) == []


def test_a_refused_download_raises_not_found_and_its_audit_entry_is_kept(w):
    mia = w.credential("mia")
    own = w.use_cases.request(mia, w.org, "member")
    w.finish(own)
    w.directory.remove_membership(w.org, w.ids["mia"])
    with pytest.raises(NotFound) as refused:
        w.use_cases.download(mia, own.request.id)
    assert Refusal.LEFT_ORGANISATION.message in str(refused.value)
    [entry] = w.audited(AuditAction.EXPORT_DOWNLOAD_REFUSED)  # committed before the refusal was raised
    assert entry.details["reason"] == Refusal.LEFT_ORGANISATION.value
    [listed] = w.use_cases.mine(mia)
    assert listed.refusal is Refusal.LEFT_ORGANISATION


def test_without_an_export_file_store_a_download_is_not_found_and_not_audited(w):
    mia = w.credential("mia")
    own = w.use_cases.request(mia, w.org, "member")
    w.finish(own)
    with pytest.raises(NotFound):
        ExportUseCases(w.transactions, None, RETENTION).download(mia, own.request.id)
    assert w.audited(AuditAction.EXPORT_DOWNLOADED) == []  # rolled back with the call


def test_the_exports_page_shows_the_frame_and_only_the_callers_exports_of_that_organisation(w):
    mia = w.credential("mia")
    own = w.use_cases.request(mia, w.org, "member")
    w.use_cases.request(w.credential("ada"), w.org, "organisation")
    framed = w.use_cases.page(mia, w.org, None)
    assert (framed.frame.org.id, framed.frame.role, framed.frame.user.id) == (w.org, OrgRole.MEMBER, w.ids["mia"])
    assert [e.request.id for e in framed.content.exports] == [own.request.id] and framed.content.working
    w.finish(own)
    assert not w.use_cases.page(mia, w.org, None).content.working
    with pytest.raises(NotFound):
        w.use_cases.page(w.credential("oscar"), w.org, None)
    with pytest.raises(NotFound):  # a project nobody can read looks like an unknown one
        w.use_cases.page(mia, w.org, "NOPE")


def test_the_sweep_deletes_expired_exports_file_and_row(w):
    mia = w.credential("mia")
    own = w.use_cases.request(mia, w.org, "member")
    w.finish(own)
    file_name = w.use_cases.get(mia, own.request.id).request.file_name
    assert w.worker.sweep(NOW + RETENTION - timedelta(seconds=1)) == 0
    assert w.worker.sweep(NOW + RETENTION) == 1
    assert w.exports.rows == {}
    with pytest.raises(NotFound):
        w.files.open(file_name)
    w.worker.run(w.job(own))  # a job whose export was swept does nothing
    assert w.exports.rows == {}


# --- imports -------------------------------------------------------------------------------------------


class Chunks:
    """A request body that records whether anyone started reading it."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks, self.read = chunks, False

    def __iter__(self):
        self.read = True
        yield from self.chunks


def test_a_server_admin_imports_a_streamed_file_audited_in_the_new_organisation(w):
    body = Chunks(b'{"format": ', b'"tow-export"}')
    report = w.imports.import_organisation(w.credential("sam"), body)
    assert (report.organisation_id, report.organisation_name, dict(report.counts)) == (99, "Globex", {"records": 1})
    assert w.importer.restored == [b'{"format": "tow-export"}']
    [entry] = w.audited(AuditAction.ORGANISATION_IMPORTED)
    assert (entry.organisation_id, entry.actor_id) == (99, w.ids["sam"])


def test_anyone_but_a_server_admin_is_refused_before_a_byte_is_read(w):
    body = Chunks(b"{}")
    with pytest.raises(AccessDenied):  # an organisation owner is no server admin
        w.imports.import_organisation(w.credential("ada"), body)
    with pytest.raises(NotFound):  # the page does not exist for them
        w.imports.import_upload(w.credential("ada"), body)
    with pytest.raises(NotFound):
        w.imports.form(w.credential("mia"))
    with pytest.raises(NotAuthenticated):
        w.imports.import_organisation(SessionCredential("forged"), body)
    assert not body.read and w.importer.restored == []


def test_the_import_form_links_home_to_the_admins_first_organisation(w):
    assert w.imports.form(w.credential("sam")).home_org_id is None
    w.directory.set_server_admin(w.ids["ada"], True)
    assert w.imports.form(w.credential("ada")).home_org_id == w.org


def test_an_admin_revoked_while_the_file_arrives_imports_nothing(w):
    sam = w.credential("sam")

    def body():
        yield b"{}"
        w.directory.revoke_session(sam.token_hash, NOW)  # signed out on another tab meanwhile

    with pytest.raises(NotAuthenticated):
        w.imports.import_organisation(sam, body())
    assert w.importer.restored == [] and w.directory.audit_log == []


def test_a_file_over_the_import_limit_is_refused_while_it_streams(w, monkeypatch):
    monkeypatch.setattr(use_cases, "IMPORT_MAX_BYTES", 4)
    with pytest.raises(PayloadTooLarge):
        w.imports.import_organisation(w.credential("sam"), Chunks(b"{}", b"{}", b"{}"))
    assert w.importer.restored == []


@pytest.mark.parametrize("refusal", [InvalidInput("not an export", field="$.format"), Conflict("Globex exists")])
def test_a_refused_file_is_an_error_for_the_api_and_an_answer_for_the_page(w, refusal):
    w.importer.refuse = refusal
    with pytest.raises(type(refusal)):
        w.imports.import_organisation(w.credential("sam"), Chunks(b"{}"))
    attempt = w.imports.import_upload(w.credential("sam"), Chunks(b"{}"))
    assert (attempt.report, attempt.refused, attempt.form.home_org_id) == (None, refusal, None)
    assert w.directory.audit_log == [] and w.directory.user_by_email("imported@example.com") is None


def test_the_page_imports_and_reports_what_was_restored(w):
    attempt = w.imports.import_upload(w.credential("sam"), Chunks(b"{}"))
    assert attempt.refused is None and attempt.report.organisation_name == "Globex"


def test_an_error_while_the_file_arrives_is_no_refused_file_but_the_pages_error(w):
    def body():
        raise InvalidInput("the file is empty", field="file")
        yield b""

    with pytest.raises(InvalidInput):
        w.imports.import_upload(w.credential("sam"), body())
    assert w.importer.restored == []
