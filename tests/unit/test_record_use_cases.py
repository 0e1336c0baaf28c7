"""The records, tickets and knowledge-page use case objects front doors call (``tow_core.use_cases.records``,
``tickets``, ``record_pages``), over the in-memory fakes: each call loads the caller fresh in its own unit of
work, refuses non-members (NotFound) and revoked or deactivated callers (NotAuthenticated), rolls back when it
fails, and answers what its page or endpoint shows. The world is tests/unit/records_world.py."""

from __future__ import annotations

import hashlib

import pytest

from tests.fake_embeddings import FakeEmbeddingModel
from tests.fake_history import summary_of
from tests.fake_unit_of_work import fake_transactions, with_inbox
from tests.fake_uploads import InMemoryUploadRecords, InMemoryUploadStore
from tests.unit.records_world import World
from tow_core import knowledge
from tow_core.embeddings import EmbeddingSpace
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotAuthenticated, NotFound
from tow_core.knowledge import Workspace
from tow_core.records import RecordType, SearchHit
from tow_core.semantic_search import NO_TERMS_HINT, FallbackReason, SearchMode
from tow_core.unit_of_work import SessionCredential
from tow_core.uploads import NewUpload
from tow_core.use_cases.record_pages import RecordPageUseCases
from tow_core.use_cases.records import RecordUseCases
from tow_core.use_cases.tickets import TicketUseCases

TICKET, DOC, MEMORY = RecordType.TICKET, RecordType.DOC, RecordType.MEMORY
SPACE = EmbeddingSpace(1, "fake-embedding", 64)


class NearestReadable:
    """A semantic index over the world's records: every readable record matching the query, by id."""

    def __init__(self, w: World, space: EmbeddingSpace | None = SPACE) -> None:
        self.w, self.space, self.asked = w, space, []

    def active_space(self):
        return self.space

    def nearest_readable(self, principal_id, org_id, space, vector, text, query, k):
        self.asked.append(text)
        rows = sorted(self.w.records._readable_rows(principal_id, org_id, query), key=lambda r: r.id)
        return [SearchHit(summary_of(r), r.title, 0.5) for r in rows[:k]]


@pytest.fixture
def w() -> World:
    return World()


@pytest.fixture
def uploads(w: World) -> InMemoryUploadRecords:
    return InMemoryUploadRecords(w.directory, w.records, w.clock)


@pytest.fixture
def transactions(w: World, uploads: InMemoryUploadRecords):
    """The world's unit of work with the upload rows and a semantic index (pages read images for the frame)."""
    return fake_transactions(w.clock, rollback=(*w._tables, uploads), **with_inbox(
        w.clock, directory=w.directory, records=w.records, history=w.keeping, uploads=uploads,
        semantic=NearestReadable(w)))


def _scope(w: World, key: str) -> tuple[str, int]:
    return "project", w.projects[key]


# --- RecordUseCases ----------------------------------------------------------------------------------------


def test_records_are_created_read_listed_counted_updated_and_cited_through_one_object(w, transactions):
    records = RecordUseCases(transactions)
    ada, bob = w.credential("ada"), w.credential("bob")
    plan = records.create(ada, w.org, record_type=DOC, scope=_scope(w, "OPS"), title="Plan", body="See nothing")
    cites = records.create(bob, w.org, record_type=MEMORY, scope=("organisation", None), title="Ship",
                           body=f"per {plan.display_id}", fields={"memory_type": "fact"})
    assert records.get(bob, w.org, plan.display_id) == w.now(plan)
    page = records.list_records(bob, w.org, types=[DOC], project="OPS", cursor=None, limit=50)
    assert [r.title for r in page.items] == ["Plan"] and page.next_cursor is None
    assert records.count(bob, w.org) == 2 and records.count(bob, w.org, statuses=["archived"]) == 0
    assert [s.display_id for s in records.backlinks(ada, w.org, plan.display_id)] == [cites.display_id]
    assert [s.display_id for s in records.references(ada, w.org, cites.display_id)] == [plan.display_id]
    assert [s.title for s in records.lookup(bob, w.org, "Pla")] == ["Plan"]

    moved = records.update(ada, w.org, plan.display_id, version=plan.version, title="Plan B",
                           scope=("user", w.ids["ada"]))
    assert (moved.title, moved.scope) == ("Plan B", w.private("ada"))
    with pytest.raises(NotFound):  # now private to Ada: Bob cannot read it, nor learn it exists
        records.get(bob, w.org, plan.display_id)
    with pytest.raises(NotFound):  # a project Cy cannot read filters nothing: it is not found
        records.list_records(w.credential("cy"), w.org, project="SEC")


def test_record_use_cases_refuse_outsiders_unknown_and_deactivated_callers(w, transactions):
    records = RecordUseCases(transactions)
    ada = w.credential("ada")
    plan = records.create(ada, w.org, record_type=DOC, scope=("organisation", None), title="Plan")
    with pytest.raises(NotFound):  # Oscar is not a member of Acme: the organisation is not found
        records.get(w.credential("oscar"), w.org, plan.display_id)
    with pytest.raises(NotFound):
        records.search(w.credential("oscar"), w.org, "plan")
    with pytest.raises(NotAuthenticated):
        records.count(SessionCredential("forged"), w.org)
    w.directory.set_active(w.ids["ada"], False)  # revocation is immediate: the next call is refused
    with pytest.raises(NotAuthenticated):
        records.get(ada, w.org, plan.display_id)


def test_a_failing_create_or_update_leaves_nothing_behind(w, transactions):
    records = RecordUseCases(transactions)
    ada = w.credential("ada")
    with pytest.raises(NotFound):  # the parent is checked after the row is written: the row goes too
        records.create(ada, w.org, record_type=TICKET, scope=("organisation", None), title="Fix",
                       fields={"parent_id": 999_999})
    assert w.records.rows == {} and not w.activity.rows
    with pytest.raises(InvalidInput) as refused:  # Oscar is no member of Acme
        records.create(ada, w.org, record_type=TICKET, scope=("organisation", None), title="Fix",
                       fields={"assignee_id": w.ids["oscar"]})
    assert refused.value.field == "assignee_id" and w.records.rows == {}

    tkt = records.create(ada, w.org, record_type=TICKET, scope=("organisation", None), title="Fix")
    records.update(ada, w.org, tkt.display_id, version=tkt.version, status="todo")
    with pytest.raises(Conflict):  # loaded before the status change: refused, nothing of it saved
        records.update(ada, w.org, tkt.display_id, version=tkt.version, title="Fixed", status="done")
    assert (w.now(tkt).title, w.now(tkt).status) == ("Fix", "todo")


def test_search_checks_membership_once_and_cleans_the_query_once_on_every_path(w, transactions, monkeypatch):
    ada = w.credential("ada")
    RecordUseCases(transactions).create(ada, w.org, record_type=DOC, scope=_scope(w, "OPS"), title="Release plan")
    checks, cleanings = [], []
    require_member, clean_text = Workspace.require_member, knowledge.clean_text
    monkeypatch.setattr(Workspace, "require_member", lambda ws: (checks.append(ws.org_id), require_member(ws))[1])
    monkeypatch.setattr(knowledge, "clean_text", lambda *a, **k: (cleanings.append(a[0]), clean_text(*a, **k))[1])

    hybrid = RecordUseCases(transactions, FakeEmbeddingModel(64)).search(ada, w.org, " release\x07 ", project="OPS")
    assert (hybrid.mode, [h.summary.title for h in hybrid.hits]) == (SearchMode.HYBRID, ["Release plan"])
    assert checks == [w.org] and cleanings == [" release\x07 "]

    for use_cases, mode in ((RecordUseCases(transactions), SearchMode.SEMANTIC),  # falls back: no model
                            (RecordUseCases(transactions, FakeEmbeddingModel(64)), SearchMode.SEMANTIC),
                            (RecordUseCases(transactions), None)):  # keyword by default without a model
        checks.clear(), cleanings.clear()
        result = use_cases.search(ada, w.org, "release", mode=mode)
        assert [h.summary.title for h in result.hits] == ["Release plan"]
        assert checks == [w.org] and cleanings == ["release"]
    assert result.mode is SearchMode.KEYWORD


def test_semantic_search_without_a_model_answers_keyword_results_and_says_why(w, transactions):
    ada = w.credential("ada")
    records = RecordUseCases(transactions)
    records.create(ada, w.org, record_type=DOC, scope=("organisation", None), title="Release plan")
    result = records.search(ada, w.org, "release", mode=SearchMode.HYBRID)
    assert (result.mode, result.fallback_reason) == (SearchMode.KEYWORD, FallbackReason.AI_NOT_CONFIGURED)
    with pytest.raises(InvalidInput) as refused:
        records.search(ada, w.org, "   ")
    assert refused.value.field == "q"


def test_a_display_id_in_the_query_ranks_its_record_first_only_for_those_who_read_it(w, transactions):
    ada, bob = w.credential("ada"), w.credential("bob")
    records = RecordUseCases(transactions)
    plan = records.create(ada, w.org, record_type=DOC, scope=_scope(w, "OPS"), title="Release plan",
                          body="release on Fridays")
    for n in range(3):
        records.create(ada, w.org, record_type=DOC, scope=_scope(w, "OPS"), title=f"Release notes {n}",
                       body="release release release")
    secret = records.create(ada, w.org, record_type=DOC, scope=_scope(w, "SEC"), title="Launch", body="release")

    for mode, model in ((SearchMode.KEYWORD, None), (SearchMode.HYBRID, FakeEmbeddingModel(64)),
                        (SearchMode.SEMANTIC, FakeEmbeddingModel(64))):
        found = RecordUseCases(transactions, model).search(ada, w.org, f"release {str(plan.display_id).lower()}",
                                                           mode=mode)
        ids = [h.summary.id for h in found.hits]
        assert ids[0] == plan.id and ids.count(plan.id) == 1, mode  # first, and not again further down
    named_secret = records.search(bob, w.org, f"{secret.display_id} release", mode=SearchMode.KEYWORD)
    assert secret.id not in [h.summary.id for h in named_secret.hits]  # Bob cannot read SEC: not named for him
    filtered = records.search(ada, w.org, f"{plan.display_id}", types=[TICKET], mode=SearchMode.KEYWORD)
    assert plan.id not in [h.summary.id for h in filtered.hits]  # named, but not a ticket


def test_a_query_of_only_stop_words_answers_nothing_with_a_hint_in_every_mode(w, transactions):
    ada = w.credential("ada")
    records = RecordUseCases(transactions)
    plan = records.create(ada, w.org, record_type=DOC, scope=("organisation", None), title="The plan")
    for model, mode in ((None, SearchMode.KEYWORD), (FakeEmbeddingModel(64), SearchMode.HYBRID)):
        result = RecordUseCases(transactions, model).search(ada, w.org, "the ?!", mode=mode)
        assert result.hits == () and result.hint == NO_TERMS_HINT, mode
    with_id = records.search(ada, w.org, f"the {plan.display_id}")
    assert [h.summary.id for h in with_id.hits] == [plan.id] and with_id.hint is None  # a named record is an answer


# --- TicketUseCases ----------------------------------------------------------------------------------------


def test_ticket_use_cases_comment_log_and_link_for_readers_and_writers(w, transactions):
    records, tickets = RecordUseCases(transactions), TicketUseCases(transactions)
    ada, bob = w.credential("ada"), w.credential("bob")
    first = records.create(ada, w.org, record_type=TICKET, scope=_scope(w, "OPS"), title="First")
    second = records.create(ada, w.org, record_type=TICKET, scope=_scope(w, "OPS"), title="Second")
    note = records.create(ada, w.org, record_type=DOC, scope=_scope(w, "OPS"), title="Note")

    comment = tickets.add_comment(bob, w.org, first.display_id, "On it")  # OPS is open: every member writes
    assert [c.body for c in tickets.comments(ada, w.org, first.display_id)] == ["On it"]
    with pytest.raises(AccessDenied):  # only its author edits a comment
        tickets.edit_comment(ada, w.org, first.display_id, comment.id, "Mine now")
    assert tickets.edit_comment(bob, w.org, first.display_id, comment.id, "Done").body == "Done"
    assert [e.change.field for e in tickets.activity(ada, w.org, first.display_id)] == ["created"]

    link = tickets.add_link(ada, w.org, first.display_id, "blocks", str(second.display_id))
    assert [(lk.kind.value, lk.outgoing) for lk in tickets.links(bob, w.org, second.display_id)] == [
        ("blocks", False)]
    with pytest.raises(InvalidInput):  # a doc is no ticket: nothing is linked
        tickets.add_link(ada, w.org, first.display_id, "relates_to", str(note.display_id))
    assert [lk.id for lk in tickets.links(ada, w.org, first.display_id)] == [link.id]
    tickets.delete_link(ada, w.org, first.display_id, link.id)
    tickets.delete_comment(bob, w.org, first.display_id, comment.id)
    assert tickets.links(ada, w.org, first.display_id) == [] and tickets.comments(ada, w.org, first.display_id) == []

    with pytest.raises(NotFound):
        tickets.comments(w.credential("oscar"), w.org, first.display_id)
    w.directory.set_active(w.ids["bob"], False)
    with pytest.raises(NotAuthenticated):
        tickets.add_comment(bob, w.org, first.display_id, "still here?")


# --- RecordPageUseCases ------------------------------------------------------------------------------------


def _attach(w: World, uploads: InMemoryUploadRecords, record, name: str, by: str = "ada"):
    data = name.encode()
    upload = uploads.add(NewUpload(w.org, w.ids[by], hashlib.md5(data).hexdigest(), name, len(data),  # noqa: S324
                                   hashlib.sha256(data).hexdigest(), None))
    return uploads.attach(upload.id, record.id)


def test_the_record_page_frames_a_ticket_with_its_files_comments_activity_and_links(w, transactions, uploads):
    records, tickets = RecordUseCases(transactions), TicketUseCases(transactions)
    pages = RecordPageUseCases(transactions, InMemoryUploadStore())
    ada, bob = w.credential("ada"), w.credential("bob")
    tkt = records.create(ada, w.org, record_type=TICKET, scope=_scope(w, "OPS"), title="Fix the build")
    other = records.create(ada, w.org, record_type=TICKET, scope=_scope(w, "OPS"), title="Other")
    tickets.add_comment(bob, w.org, tkt.display_id, "Looking")
    tickets.add_link(ada, w.org, tkt.display_id, "relates_to", str(other.display_id))
    log = _attach(w, uploads, tkt, "build.log")

    framed = pages.record(bob, w.org, tkt.display_id, "OPS")
    view = framed.content
    assert (framed.frame.org.name, framed.frame.project.key, view.record.title) == ("Acme", "OPS", "Fix the build")
    assert [f.id for f in view.files] == [log.id] and view.uploads_enabled
    assert [c.body for c in view.comments] == ["Looking"] and [lk.other.title for lk in view.links] == ["Other"]
    assert [e.change.field for e in view.activity] == ["created"]
    assert view.crumbs is None and view.revisions is None  # a ticket has no doc parts
    assert view.people[w.ids["bob"]] == "Bob"

    without_uploads = RecordPageUseCases(transactions).record(bob, w.org, tkt.display_id, None).content
    assert without_uploads.files == [] and not without_uploads.uploads_enabled
    with pytest.raises(NotFound):  # SEC is a project Bob cannot read: the page is not found
        pages.record(bob, w.org, tkt.display_id, "SEC")
    with pytest.raises(NotFound):
        pages.record(w.credential("oscar"), w.org, tkt.display_id, None)


def test_the_doc_page_has_crumbs_and_revisions_and_the_list_frames_one_type(w, transactions):
    records, pages = RecordUseCases(transactions), RecordPageUseCases(transactions)
    ada = w.credential("ada")
    doc = records.create(ada, w.org, record_type=DOC, scope=_scope(w, "OPS"), title="Handbook")
    records.update(ada, w.org, doc.display_id, version=doc.version, body="v2")
    records.create(ada, w.org, record_type=TICKET, scope=_scope(w, "OPS"), title="Not a doc")

    view = pages.record(ada, w.org, doc.display_id, None).content
    assert [c.title for c in view.crumbs][-1] == "Handbook" and [r.version for r in view.revisions] == [1]
    assert view.comments is None
    listed = pages.record_list(ada, w.org, "OPS", DOC, status=None, cursor=None, limit=50)
    assert listed.frame.project.key == "OPS" and [r.title for r in listed.content.records] == ["Handbook"]
    assert [n.summary.title for n in listed.content.tree] == ["Handbook"]
    assert pages.record_list(ada, w.org, None, DOC, status="archived", cursor=None, limit=50).content.records == ()


def test_page_forms_create_privately_save_fields_for_the_type_and_move_docs(w, transactions):
    pages = RecordPageUseCases(transactions)
    bob = w.credential("bob")
    mine = pages.create(bob, w.org, record_type=TICKET, scope=("user", None), title="Mine", body="",
                        fields={"priority": 1})
    assert mine.scope == w.private("bob") and mine.fields["priority"] == 1

    asked = []
    saved = pages.save(bob, w.org, mine.display_id, version=mine.version, title="Mine!", body="b",
                       fields_for=lambda record_type: asked.append(record_type) or {"priority": 2})
    assert asked == [TICKET] and (saved.title, saved.fields["priority"]) == ("Mine!", 2)
    with pytest.raises(Conflict):  # a stale form changes nothing
        pages.save(bob, w.org, mine.display_id, version=mine.version, title="Lost", body="", fields_for=lambda t: None)
    assert w.now(mine).title == "Mine!"

    doc = pages.create(bob, w.org, record_type=DOC, scope=_scope(w, "OPS"), title="Notes", body="", fields={})
    private = pages.move_doc(bob, w.org, doc.display_id, ("user", None), version=doc.version)
    assert private.scope == w.private("bob")
    back = pages.move_doc(bob, w.org, doc.display_id, ("organisation", None), version=private.version)
    assert back.scope == w.org_scope

    pages.allow_preview(bob, w.org)
    with pytest.raises(NotFound):
        pages.allow_preview(w.credential("oscar"), w.org)
    with pytest.raises(NotFound):  # Oscar's private scope is not Bob's to file in
        pages.create(w.credential("oscar"), w.org, record_type=DOC, scope=("user", None), title="x", body="",
                     fields={})


def test_the_search_page_searches_only_a_real_query_within_the_picked_project(w, transactions):
    records = RecordUseCases(transactions)
    ada = w.credential("ada")
    records.create(ada, w.org, record_type=DOC, scope=_scope(w, "OPS"), title="Release plan")
    records.create(ada, w.org, record_type=DOC, scope=_scope(w, "APP"), title="Release notes")
    pages = RecordPageUseCases(transactions, embedding_model=FakeEmbeddingModel(64))

    blank = pages.search(ada, w.org, None, "  ", mode=None, cursor=None)
    assert blank.content.result is None and blank.content.ai_configured and blank.frame.org.name == "Acme"
    found = pages.search(ada, w.org, "OPS", "release", mode=None, cursor=None).content.result
    assert found.mode is SearchMode.HYBRID and [h.summary.title for h in found.hits] == ["Release plan"]
    keyword = RecordPageUseCases(transactions).search(ada, w.org, None, "release", mode=None, cursor=None).content
    assert not keyword.ai_configured and keyword.result.mode is SearchMode.KEYWORD
    assert sorted(h.summary.title for h in keyword.result.hits) == ["Release notes", "Release plan"]
