"""Doc pages over the in-memory fakes (SPEC §2, §4; rules in ``tow_core.docs``): revisions, archive and
unarchive, the page tree and its parent rules, recursive scope moves that need write access to every old
scope and the new one, delete, the tree and breadcrumbs. The world is tests/unit/records_world.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.records_world import World
from tow_core import docs
from tow_core.access import Scope
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.knowledge import Workspace
from tow_core.records import NewRecord, RecordType

DOC = RecordType.DOC


@pytest.fixture
def w() -> World:
    return World()


def doc(w: World, title: str, scope=None, *, by: str = "ada", parent=None, body: str = ""):
    fields = {"parent_id": parent.id} if parent is not None else None
    return w.create(by, DOC, title, scope or w.org_scope, body=body, fields=fields)


def scopes(w: World, *pages):
    return [w.now(p).scope for p in pages]


# --- revisions ---------------------------------------------------------------------------------------


def test_every_save_of_title_or_body_keeps_the_previous_version_and_status_changes_keep_none(w):
    plan = doc(w, "Plan", w.project("OPS"), body="v1 body")
    w.update("ada", plan, title="Plan B")
    w.update("bob", plan, status="archived")
    w.update("bob", plan, status="active", body="v4 body")

    revisions = w.do("cy", docs.list_revisions, w.revisions, plan.display_id)
    assert [(r.version, r.title, r.body) for r in revisions] == [(3, "Plan B", "v1 body"), (1, "Plan", "v1 body")]
    assert [r.replaced_by for r in revisions] == [w.ids["bob"], w.ids["ada"]]
    assert all(r.saved_at < r.replaced_at for r in revisions)
    older = w.do("cy", docs.list_revisions, w.revisions, plan.display_id, before_version=3)
    assert [r.version for r in older] == [1]
    assert [r.version for r in w.do("cy", docs.list_revisions, w.revisions, plan.display_id, limit=1)] == [3]


def test_revisions_are_read_only_by_the_docs_readers(w):
    secret = doc(w, "Pentest", w.project("SEC"), body="the root password is hunter2")
    w.update("ada", secret, body="rotated")
    assert [r.body for r in w.do("ada", docs.list_revisions, w.revisions, secret.display_id)] == [
        "the root password is hunter2"]
    with pytest.raises(NotFound) as refused:
        w.do("bob", docs.list_revisions, w.revisions, secret.display_id)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("limit", [0, docs.MAX_REVISIONS_PAGE + 1], ids=["zero", "over-the-page-size"])
def test_a_revision_page_size_out_of_range_is_refused(w, limit):
    page = doc(w, "Page")
    with pytest.raises(InvalidInput) as refused:
        w.do("ada", docs.list_revisions, w.revisions, page.display_id, limit=limit)
    assert refused.value.field == "limit"


def test_only_docs_have_revisions(w):
    ticket = w.create("ada", RecordType.TICKET, "Not a doc", w.org_scope)
    with pytest.raises(InvalidInput) as refused:
        w.do("ada", docs.list_revisions, w.revisions, ticket.display_id)
    assert refused.value.field == "display_id"


# --- archive and unarchive -----------------------------------------------------------------------------


def test_a_doc_is_archived_and_unarchived_and_stays_readable_with_its_history(w):
    page = doc(w, "Handbook", body="v1")
    w.update("bob", page, body="v2")
    assert w.update("bob", page, status="archived").status == "archived"
    assert w.do("cy", docs.readable_doc, page.display_id).status == "archived"
    assert w.update("cy", page, status="active").status == "active"
    assert [r.body for r in w.do("cy", docs.list_revisions, w.revisions, page.display_id)] == ["v1"]


@pytest.mark.parametrize(("who", "scope", "error"), [
    ("bob", "APP", AccessDenied),  # a viewer reads but does not write
    ("cy", "APP", NotFound),  # no grant on a restricted project: does not exist for Cy
    ("bob", "ada-private", NotFound),
], ids=["viewer", "no-grant-on-restricted-project", "someone-elses-private-page"])
def test_archiving_needs_write_access_to_the_docs_scope(w, who, scope, error):
    page = doc(w, "Spec", w.private("ada") if scope == "ada-private" else w.project(scope))
    with pytest.raises(error):
        w.update(who, page, status="archived")
    assert w.now(page).status == "active"


@pytest.mark.parametrize("status", ["done", "superseded", "deleted"])
def test_a_doc_has_no_status_but_active_and_archived(w, status):
    page = doc(w, "Page")
    with pytest.raises(InvalidInput) as refused:
        w.update("ada", page, status=status)
    assert refused.value.field == "status"


# --- the parent ------------------------------------------------------------------------------------------


def test_a_sub_page_is_created_under_a_readable_doc_of_its_own_scope(w):
    guide = doc(w, "Guide", by="bob")
    chapter = doc(w, "Chapter", by="bob", parent=guide)
    assert chapter.fields["parent_id"] == guide.id


@pytest.mark.parametrize(("parent", "scope", "error", "field"), [
    ("hidden", "org", NotFound, "parent_id"),  # exists, but not for Bob
    ("missing", "org", NotFound, "parent_id"),
    ("other-organisation", "org", NotFound, "parent_id"),
    ("ticket", "org", InvalidInput, "parent_id"),
    ("guide", "bob-private", InvalidInput, "scope"),  # a sub-page lives in its parent's scope
], ids=["parent-bob-cannot-read", "no-such-parent", "parent-in-another-organisation", "parent-is-a-ticket",
        "scope-other-than-the-parents"])
def test_a_parent_that_is_not_a_readable_doc_of_the_same_scope_is_refused(w, parent, scope, error, field):
    elsewhere = w.records.add(NewRecord(w.other_org, DOC, "DOC", Scope.organisation(w.other_org), "Oscar's page",
                                        "", "active", w.ids["oscar"], {}), 1)
    parents = {
        "hidden": doc(w, "Incident log", w.project("SEC")).id,
        "missing": 10**9,
        "other-organisation": elsewhere.id,
        "ticket": w.create("bob", RecordType.TICKET, "A ticket", w.org_scope).id,
        "guide": doc(w, "Guide", by="bob").id,
    }
    where = w.private("bob") if scope == "bob-private" else w.org_scope
    before = set(w.records.rows)
    with pytest.raises(error) as refused:
        w.create("bob", DOC, "Sub-page", where, fields={"parent_id": parents[parent]})
    assert refused.value.field == field
    assert "Incident log" not in str(refused.value) and "Oscar" not in str(refused.value)
    assert set(w.records.rows) == before


@pytest.mark.parametrize("under", ["itself", "its-sub-page", "its-sub-sub-page"])
def test_a_page_never_moves_under_itself_or_below_itself(w, under):
    guide = doc(w, "Guide")
    chapter = doc(w, "Chapter", parent=guide)
    section = doc(w, "Section", parent=chapter)
    target = {"itself": guide, "its-sub-page": chapter, "its-sub-sub-page": section}[under]
    with pytest.raises(InvalidInput) as refused:
        w.update("ada", guide, fields={"parent_id": target.id})
    assert refused.value.field == "parent_id"
    assert w.now(guide).fields["parent_id"] is None and w.now(guide).version == 1


# --- moving scope ---------------------------------------------------------------------------------------


def test_a_scope_move_takes_every_sub_page_along_and_audits_each(w):
    root = doc(w, "Runbook", w.project("OPS"), by="bob")
    child = doc(w, "Restarts", w.project("OPS"), by="bob", parent=root)
    grandchild = doc(w, "Restart the queue", w.project("OPS"), by="bob", parent=child)

    moved = w.do("bob", docs.move_scope, root.display_id, "organisation", None)
    assert moved.scope == w.org_scope
    assert scopes(w, root, child, grandchild) == [w.org_scope] * 3
    audited = [(e.action, e.target) for e in w.directory.audit_log]
    assert audited == [(AuditAction.RECORD_SCOPE_MOVED, str(p.display_id)) for p in (root, child, grandchild)]
    assert w.directory.audit_log[-1].details["via"] == f"parent {root.display_id}"


@pytest.mark.parametrize(("who", "source", "destination", "error"), [
    ("bob", "org", "APP", AccessDenied),  # reads the destination, cannot write it
    ("bob", "org", "SEC", NotFound),  # cannot even read it
    ("bob", "org", "ada-private", NotFound),  # someone else's private scope
    ("bob", "APP", "org", AccessDenied),  # reads the page, cannot write where it is
    ("cy", "SEC", "org", NotFound),  # cannot read the page at all
    ("bob", "org", "group", None),  # Bob is in Eng
    ("cy", "org", "group", AccessDenied),  # Cy is not (and may know the group exists)
    ("bob", "OPS", "bob-private", None),
    ("ada", "SEC", "org", None),  # owners write every project
], ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", "moves"))
def test_a_move_needs_write_access_to_the_old_scope_and_the_new_one(w, who, source, destination, error):
    def scope(name):
        return {"org": w.org_scope, "group": w.group(), "ada-private": w.private("ada"),
                "bob-private": w.private("bob")}.get(name) or w.project(name)

    page = doc(w, "Page", scope(source))
    child = doc(w, "Sub-page", scope(source), parent=page)
    target = scope(destination)
    move = (docs.move_scope, page.display_id, target.kind.value, target.ref_id)
    if error is None:
        w.do(who, *move)
        assert scopes(w, page, child) == [target, target]
        return
    with pytest.raises(error):
        w.do(who, *move)
    assert scopes(w, page, child) == [scope(source)] * 2


def test_one_sub_page_in_a_scope_the_caller_cannot_change_stops_the_whole_move_without_naming_it(w):
    root = doc(w, "Runbook", by="bob")
    child = doc(w, "Restarts", by="bob", parent=root)
    notes = doc(w, "Ada's private notes", w.private("ada"))
    # Planted below the child, as older data or an import could leave it (the use cases refuse this).
    w.records.rows[notes.id] = replace(notes, fields={**notes.fields, "parent_id": child.id})

    for move in ((docs.move_scope, root.display_id, "project", w.projects["OPS"]),
                 (docs.make_private, root.display_id)):
        with pytest.raises(AccessDenied) as refused:
            w.do("bob", *move)
        assert "private notes" not in str(refused.value) and str(notes.display_id) not in str(refused.value)
        assert scopes(w, root, child, notes) == [w.org_scope, w.org_scope, w.private("ada")]
    assert w.directory.audit_log == []


def test_make_private_moves_the_subtree_out_of_everyone_elses_sight(w):
    root = doc(w, "Drafts", by="bob")
    child = doc(w, "Draft 1", by="bob", parent=root)
    w.do("bob", docs.make_private, root.display_id)
    assert scopes(w, root, child) == [w.private("bob")] * 2
    for page in (root, child):
        with pytest.raises(NotFound):
            w.do("ada", docs.readable_doc, page.display_id)


def test_a_stale_version_moves_nothing(w):
    root = doc(w, "Drafts", by="bob")
    w.update("bob", root, body="edited since")
    with pytest.raises(Conflict):
        w.do("bob", docs.make_private, root.display_id, version=1)
    assert w.now(root).scope == w.org_scope


def test_a_sub_page_moved_on_its_own_becomes_a_top_level_page_of_its_new_scope(w):
    root = doc(w, "Runbook", by="bob")
    child = doc(w, "Restarts", by="bob", parent=root)
    alone = w.do("bob", docs.move_scope, child.display_id, "project", w.projects["OPS"])
    assert (alone.scope, alone.fields["parent_id"]) == (w.project("OPS"), None)
    assert w.now(root).scope == w.org_scope


def test_a_move_into_the_parents_scope_keeps_the_parent(w):
    root = doc(w, "Runbook", by="bob")
    child = doc(w, "Restarts", by="bob", parent=root)
    w.do("bob", docs.move_scope, root.display_id, "project", w.projects["OPS"])
    assert w.now(child).fields["parent_id"] == root.id
    assert w.now(child).scope == w.project("OPS")


def test_moving_under_a_new_parent_moves_the_page_and_its_sub_pages_into_the_parents_scope(w):
    ops_home = doc(w, "Operations", w.project("OPS"))
    deploy = doc(w, "Deploy", by="bob")
    rollback = doc(w, "Rollback", by="bob", parent=deploy)
    moved = w.update("bob", deploy, fields={"parent_id": ops_home.id})
    assert moved.scope == w.project("OPS") and moved.version == w.now(deploy).version
    assert scopes(w, deploy, rollback) == [w.project("OPS")] * 2
    tree = w.do("ada", docs.doc_tree, w.tree, "OPS")
    assert [(n.summary.title, [(c.summary.title, [g.summary.title for g in c.children]) for c in n.children])
            for n in tree] == [("Operations", [("Deploy", ["Rollback"])])]


def test_moving_under_a_parent_in_a_scope_the_caller_cannot_write_is_refused(w):
    app_home = doc(w, "Application", w.project("APP"))
    deploy = doc(w, "Deploy", by="bob")
    rollback = doc(w, "Rollback", by="bob", parent=deploy)
    with pytest.raises(AccessDenied):
        w.update("bob", deploy, fields={"parent_id": app_home.id})
    assert (w.now(deploy).fields["parent_id"], scopes(w, deploy, rollback)) == (None, [w.org_scope] * 2)


def test_a_new_parent_and_a_new_scope_at_once_is_refused(w):
    ops_home = doc(w, "Operations", w.project("OPS"))
    deploy = doc(w, "Deploy", by="bob")
    with pytest.raises(InvalidInput) as refused:
        w.update("bob", deploy, fields={"parent_id": ops_home.id}, scope=w.private("bob"))
    assert refused.value.field == "scope" and w.now(deploy).version == 1


# --- delete ---------------------------------------------------------------------------------------------


def test_deleting_a_leaf_page_removes_it_its_revisions_and_references_and_audits_it(w):
    parent = doc(w, "Policies")
    leaf = doc(w, "Travel policy", parent=parent, body="v1")
    w.update("ada", leaf, body="v2")
    citing = doc(w, "Index", body=f"See {leaf.display_id}.")
    assert len(w.records.references[citing.id]) == 1

    w.do("bob", docs.delete_doc, w.tree, leaf.display_id)
    with pytest.raises(NotFound):
        w.do("ada", docs.readable_doc, leaf.display_id)
    assert w.revisions.list(leaf.id, before_version=None, limit=50) == []
    assert len(w.records.references[citing.id]) == 0
    entry = w.directory.audit_log[-1]
    assert (entry.action, entry.actor_id, entry.target) == (AuditAction.RECORD_DELETED, w.ids["bob"],
                                                          str(leaf.display_id))
    w.do("ada", docs.delete_doc, w.tree, parent.display_id)  # no sub-pages left
    assert parent.id not in w.records.rows


@pytest.mark.parametrize(("who", "page", "error"), [
    ("bob", "with-sub-pages", Conflict),
    ("bob", "APP", AccessDenied),  # viewer
    ("cy", "SEC", NotFound),
    ("ada", "ticket", InvalidInput),
], ids=["page-with-sub-pages", "viewer", "cannot-read", "not-a-doc"])
def test_delete_is_refused_for_pages_with_sub_pages_without_write_access_or_that_are_no_docs(w, who, page,
                                                                                           error):
    pages = {"with-sub-pages": doc(w, "Policies"), "APP": doc(w, "APP spec", w.project("APP")),
             "SEC": doc(w, "SEC spec", w.project("SEC")),
             "ticket": w.create("ada", RecordType.TICKET, "Not a doc", w.org_scope)}
    doc(w, "Travel", parent=pages["with-sub-pages"])
    with pytest.raises(error):
        w.do(who, docs.delete_doc, w.tree, pages[page].display_id)
    assert pages[page].id in w.records.rows


# --- tree and breadcrumbs -----------------------------------------------------------------------------


def test_the_tree_shows_readable_docs_nested_and_only_the_chosen_projects(w):
    handbook = doc(w, "Handbook", w.project("APP"))
    onboarding = doc(w, "Onboarding", w.project("APP"), parent=handbook)
    doc(w, "Laptops", w.project("APP"), parent=onboarding)
    doc(w, "Salaries", w.project("SEC"))
    doc(w, "all hands", by="bob")

    tree = w.do("bob", docs.doc_tree, w.tree, "APP")
    assert [(n.summary.title, [c.summary.title for c in n.children]) for n in tree] == [("Handbook", ["Onboarding"])]
    assert tree[0].children[0].children[0].summary.title == "Laptops"
    everything = [n.summary.title for n in w.do("bob", docs.doc_tree, w.tree, None)]
    assert everything == ["all hands", "Handbook"]  # by title, case-insensitively; no Salaries
    with pytest.raises(NotFound):
        w.do("bob", docs.doc_tree, w.tree, "SEC")


def test_breadcrumbs_name_organisation_project_and_ancestors(w):
    handbook = doc(w, "Handbook", w.project("APP"))
    onboarding = doc(w, "Onboarding", w.project("APP"), parent=handbook)
    laptops = doc(w, "Laptops", w.project("APP"), parent=onboarding)
    crumbs = w.do("bob", docs.breadcrumbs, w.tree, laptops.display_id)
    assert [(c.kind, c.title) for c in crumbs] == [
        ("organisation", "Acme"), ("project", "APP project"), ("section", "Docs"), ("doc", "Handbook"),
        ("doc", "Onboarding"), ("doc", "Laptops")]
    assert crumbs[-2].display_id == onboarding.display_id


def test_an_ancestor_the_caller_cannot_read_is_shown_as_an_ellipsis_and_its_child_at_the_top(w):
    board = doc(w, "Board minutes 2026", w.project("SEC"))
    agenda = doc(w, "Agenda")
    w.records.rows[agenda.id] = replace(agenda, fields={**agenda.fields, "parent_id": board.id})  # planted

    crumbs = w.do("bob", docs.breadcrumbs, w.tree, agenda.display_id)
    assert [c.title for c in crumbs] == ["Acme", "Docs", docs.HIDDEN, "Agenda"]
    assert crumbs[2].display_id is None
    assert [c.title for c in w.do("ada", docs.breadcrumbs, w.tree, agenda.display_id)] == [
        "Acme", "Docs", "Board minutes 2026", "Agenda"]
    assert [n.summary.title for n in w.do("bob", docs.doc_tree, w.tree, None)] == ["Agenda"]
    with pytest.raises(NotFound):
        w.do("bob", docs.breadcrumbs, w.tree, board.display_id)


def test_someone_outside_the_organisation_sees_no_tree(w):
    doc(w, "Handbook")
    outsider = Workspace(w.records, w.directory, w.directory.principal(w.ids["oscar"]), w.org)
    with pytest.raises(NotFound):
        docs.doc_tree(outsider, w.tree, None)


# --- the use case object front doors call (tow_core.use_cases.docs) ----------------------------------


def test_doc_use_cases_load_the_caller_fresh_check_membership_and_commit_or_roll_back_as_one(w):
    from tow_core.errors import NotAuthenticated
    from tow_core.unit_of_work import SessionCredential
    from tow_core.use_cases.docs import DocUseCases

    use_cases = DocUseCases(w.transactions)
    plan = doc(w, "Plan", w.project("OPS"))
    child = doc(w, "Child", w.project("OPS"), parent=plan)
    ada, oscar = w.credential("ada"), w.credential("oscar")

    assert [n.summary.title for n in use_cases.tree(ada, w.org, None)] == ["Plan"]
    with pytest.raises(NotFound):  # not a member of Acme: the organisation is not found
        use_cases.tree(oscar, w.org, None)
    with pytest.raises(NotAuthenticated):  # a token no session has
        use_cases.tree(SessionCredential("forged"), w.org, None)

    with pytest.raises(Conflict):  # has a sub-page: refused, and nothing of the attempt remains
        use_cases.delete(ada, w.org, plan.display_id)
    assert w.now(plan) and w.now(child)

    moved = use_cases.make_private(ada, w.org, plan.display_id, version=None)
    assert moved.scope == w.private("ada") and w.now(child).scope == w.private("ada")
    w.directory.set_active(w.ids["ada"], False)  # deactivated: the next call is refused (revocation is immediate)
    with pytest.raises(NotAuthenticated):
        use_cases.breadcrumbs(ada, w.org, plan.display_id)


def test_the_sidebar_tree_opens_one_readable_level_at_a_time(w):
    handbook = doc(w, "Handbook", w.project("APP"))
    onboarding = doc(w, "Onboarding", w.project("APP"), parent=handbook)
    doc(w, "Laptops", w.project("APP"), parent=onboarding)
    secret = doc(w, "Salaries", w.project("SEC"))
    doc(w, "all hands", by="bob")

    def level(who, project=None, parent=None):
        return [(b.summary.title, b.has_children) for b in w.do(who, docs.doc_branches, w.tree, project, parent)]

    assert level("bob") == [("all hands", False), ("Handbook", True)]
    assert level("bob", parent=handbook.display_id) == [("Onboarding", True)]
    assert level("bob", "APP", onboarding.display_id) == [("Laptops", False)]
    assert ("Salaries", False) in level("ada")
    for attack in ((None, secret.display_id), ("SEC", None), ("SEC", secret.display_id)):
        with pytest.raises(NotFound):  # a doc or project Bob cannot read looks like one that does not exist
            level("bob", *attack)
    with pytest.raises(NotFound):  # the parent must lie in the chosen project too
        level("ada", "SEC", handbook.display_id)
