"""A doc's versions as pages (issue 18; rules in ``tow_core.revisions``): one version's text, the line diff
between two versions, restore as a new version, and access exactly as reading the doc — tried as attacks
(other people's docs, another organisation's, a revoked grant). The world is tests/unit/records_world.py."""

from __future__ import annotations

import pytest

from tests.fake_unit_of_work import fake_transactions, with_inbox
from tests.fake_uploads import InMemoryUploadRecords
from tests.unit.records_world import World
from tow_core import docs, revisions
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.records import RecordType
from tow_core.revisions import DiffLine, LineKind, line_diff
from tow_core.use_cases.revision_pages import RevisionPageUseCases

DOC = RecordType.DOC


@pytest.fixture
def w() -> World:
    return World()


def plan(w: World, scope=None):
    """A doc saved three times: v1 "Plan"/"one", v2 "Plan"/"one\ntwo", v3 "Plan B"/"one\n2\nthree"."""
    doc = w.create("ada", DOC, "Plan", scope or w.project("OPS"), body="one")
    w.update("ada", doc, body="one\ntwo")
    w.update("ada", doc, title="Plan B", body="one\n2\nthree")
    return w.now(doc)


def test_each_kept_version_and_the_current_one_read_as_they_were(w):
    doc = plan(w)
    texts = [w.do("cy", revisions.version_of, w.revisions, doc.display_id, v)[1] for v in (1, 2, 3)]
    assert [(t.version, t.title, t.body, t.current) for t in texts] == [
        (1, "Plan", "one", False), (2, "Plan", "one\ntwo", False), (3, "Plan B", "one\n2\nthree", True)]
    for missing in (0, 4, -1, 10**12):
        with pytest.raises(NotFound):
            w.do("cy", revisions.version_of, w.revisions, doc.display_id, missing)


def test_a_version_a_status_change_left_no_text_for_is_not_found(w):
    doc = w.create("ada", DOC, "Plan", w.org_scope, body="a")
    w.update("ada", doc, status="archived")  # v2: no revision kept for v1 (the text did not change)
    w.update("ada", doc, status="active", body="b")  # v3: v2's text kept
    assert [r.version for r in w.do("ada", docs.list_revisions, w.revisions, doc.display_id)] == [2]
    with pytest.raises(NotFound):
        w.do("ada", revisions.version_of, w.revisions, doc.display_id, 1)


def test_the_diff_marks_added_and_removed_lines_and_compares_with_the_current_version_by_default(w):
    doc = plan(w)
    _, diff = w.do("cy", revisions.compare, w.revisions, doc.display_id, 2, None)
    assert (diff.old.version, diff.new.version, diff.new.current) == (2, 3, True)
    assert diff.lines == (DiffLine(LineKind.KEPT, "one"), DiffLine(LineKind.REMOVED, "two"),
                          DiffLine(LineKind.ADDED, "2"), DiffLine(LineKind.ADDED, "three"))
    assert (diff.added, diff.removed, diff.title_changed) == (2, 1, True)
    _, same_title = w.do("cy", revisions.compare, w.revisions, doc.display_id, 1, 2)
    assert not same_title.title_changed and same_title.lines[-1] == DiffLine(LineKind.ADDED, "two")


def test_long_unchanged_runs_are_folded_to_a_count_with_context_around_each_change():
    old = "\n".join(f"line {n}" for n in range(1, 21))
    new = old.replace("line 10", "line ten")
    lines = line_diff(old, new)
    assert lines[0] == DiffLine(LineKind.FOLDED, count=6)  # lines 1-6; 7, 8, 9 are context
    assert [x.text for x in lines[1:4]] == ["line 7", "line 8", "line 9"]
    assert lines[4:6] == [DiffLine(LineKind.REMOVED, "line 10"), DiffLine(LineKind.ADDED, "line ten")]
    assert [x.text for x in lines[6:9]] == ["line 11", "line 12", "line 13"]
    assert lines[9] == DiffLine(LineKind.FOLDED, count=7)
    assert line_diff("same\ntext", "same\ntext") == [DiffLine(LineKind.FOLDED, count=2)]
    assert line_diff("", "new") == [DiffLine(LineKind.ADDED, "new")]


def test_restore_saves_the_old_text_as_a_new_version_and_the_history_keeps_everything(w):
    doc = plan(w)
    restored = w.do("bob", revisions.restore, w.revisions, doc.display_id, 1, expected_version=3)
    assert (restored.version, restored.title, restored.body) == (4, "Plan", "one")
    kept = w.do("cy", docs.list_revisions, w.revisions, doc.display_id)
    assert [(r.version, r.title, r.body) for r in kept] == [(3, "Plan B", "one\n2\nthree"), (2, "Plan", "one\ntwo"),
                                                            (1, "Plan", "one")]
    assert kept[0].replaced_by == w.ids["bob"]


def test_restore_refuses_a_stale_page_and_a_version_that_would_change_nothing(w):
    doc = plan(w)
    with pytest.raises(Conflict):
        w.do("ada", revisions.restore, w.revisions, doc.display_id, 1, expected_version=2)
    with pytest.raises(InvalidInput) as same:
        w.do("ada", revisions.restore, w.revisions, doc.display_id, 3, expected_version=3)
    assert same.value.field == "version"
    assert w.now(doc).version == 3


# --- access: exactly as reading the doc, tried as attacks ---------------------------------------------------


def every_read(w: World, name: str, doc):
    return [lambda: w.do(name, revisions.version_of, w.revisions, doc.display_id, 1),
            lambda: w.do(name, revisions.version_of, w.revisions, doc.display_id, doc.version),
            lambda: w.do(name, revisions.compare, w.revisions, doc.display_id, 1, None),
            lambda: w.do(name, revisions.restore, w.revisions, doc.display_id, 1, expected_version=doc.version)]


@pytest.mark.parametrize("scope_of,outsider", [
    (lambda w: w.project("SEC"), "bob"),  # a restricted project without him
    (lambda w: w.private("ada"), "cy"),  # someone else's private doc
    (lambda w: w.private("ada"), "oscar"),  # another organisation's member
])
def test_a_doc_you_cannot_read_has_no_versions_no_diff_and_nothing_to_restore(w, scope_of, outsider):
    doc = plan(w, scope_of(w))
    for attempt in every_read(w, outsider, doc):
        with pytest.raises(NotFound):
            attempt()
    assert w.now(doc).version == 3


def test_a_revoked_grant_closes_the_versions_at_once(w):
    doc = plan(w, w.project("APP"))  # Bob is a viewer of APP
    assert w.do("bob", revisions.version_of, w.revisions, doc.display_id, 1)[1].body == "one"
    assert not w.do("bob", revisions.can_restore, w.now(doc)) and w.do("ada", revisions.can_restore, w.now(doc))
    with pytest.raises(AccessDenied):  # a viewer reads but cannot restore
        w.do("bob", revisions.restore, w.revisions, doc.display_id, 1, expected_version=3)
    grant = next(g for g in w.directory.grants(w.projects["APP"]) if g.user_id == w.ids["bob"])
    w.directory.delete_grant(grant.id)
    for attempt in every_read(w, "bob", doc):
        with pytest.raises(NotFound):
            attempt()


def test_the_page_use_cases_read_in_one_unit_of_work_with_the_frame(w):
    doc = plan(w)
    uploads = InMemoryUploadRecords(w.directory, w.records, w.clock)  # the frame reads avatars and logos
    pages = RevisionPageUseCases(fake_transactions(w.clock, rollback=(*w._tables, uploads), **with_inbox(
        w.clock, directory=w.directory, records=w.records, history=w.keeping, uploads=uploads)))
    shown = pages.version(w.credential("cy"), w.org, doc.display_id, 2, None)
    assert shown.content.text.body == "one\ntwo" and shown.content.doc.version == 3
    assert shown.frame.org.id == w.org and shown.content.people[w.ids["ada"]] == "Ada"
    assert pages.compare(w.credential("cy"), w.org, doc.display_id, 1, 2, "OPS").content.diff.added == 1
    restored = pages.restore(w.credential("ada"), w.org, doc.display_id, 2, expected_version=3)
    assert (restored.version, restored.body) == (4, "one\ntwo")
    with pytest.raises(NotFound):
        pages.version(w.credential("oscar"), w.org, doc.display_id, 1, None)


def test_a_long_doc_diffs_quickly_and_shows_only_its_changes_with_context():
    old = "\n".join(f"paragraph {n} " + "words " * 8 for n in range(20_000))
    new = old.replace("paragraph 100 ", "paragraph one hundred ")
    lines = line_diff(old, new)
    changed = [x for x in lines if x.kind in (LineKind.ADDED, LineKind.REMOVED)]
    assert [x.kind for x in changed] == [LineKind.REMOVED, LineKind.ADDED]
    assert len(lines) == 2 * 3 + 2 + 2  # context, the change, two folds
