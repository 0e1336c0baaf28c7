"""Tickets over the in-memory fakes (SPEC §2, §4; rules in ``tow_core.tickets`` and ``tow_core.knowledge``):
statuses, priority 1–4, the assignee and the parent, the activity log, comments only their author changes,
and links that need write on the source and read on the target. The world is tests/unit/records_world.py."""

from __future__ import annotations

import pytest

from tests.unit.records_world import World
from tow_core import tickets
from tow_core.access import ProjectRole
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.records import TRANSITIONS, RecordType

TICKET = RecordType.TICKET
STATUSES = ("backlog", "todo", "in_progress", "blocked", "in_review", "done", "canceled", "archived")


@pytest.fixture
def w() -> World:
    return World()


def ticket(w: World, title: str, scope=None, *, by: str = "ada", **fields):
    return w.create(by, TICKET, title, scope or w.org_scope, fields=fields or None)


# --- display IDs, statuses and fields --------------------------------------------------------------------


def test_tickets_are_numbered_with_their_projects_key_or_tkt_and_keep_it(w):
    assert [str(ticket(w, t, s).display_id) for t, s in (("a", w.project("OPS")), ("b", w.project("OPS")),
                                                         ("c", None), ("d", w.project("APP")))] == [
        "OPS-1", "OPS-2", "TKT-1", "APP-1"]
    ops = ticket(w, "e", w.project("OPS"))
    with pytest.raises(InvalidInput) as refused:
        w.update("ada", ops, scope=w.project("SEC"))
    assert refused.value.field == "scope" and w.now(ops).scope == w.project("OPS")


def test_a_new_ticket_starts_in_the_backlog_as_a_task_of_priority_3(w):
    new = ticket(w, "Invoices are late")
    assert (new.status, new.fields["ticket_type"], new.fields["priority"], new.fields["assignee_id"]) == (
        "backlog", "task", 3, None)


def test_the_lifecycle_allows_every_status_from_every_other():
    assert tuple(TRANSITIONS[TICKET]) == STATUSES
    assert all(TRANSITIONS[TICKET][s] == set(STATUSES) - {s} for s in STATUSES)


@pytest.mark.parametrize("status", STATUSES[1:] + ("backlog",))
def test_a_ticket_moves_to_any_status(w, status):
    tkt = ticket(w, "Work", by="bob")
    w.update("bob", tkt, status="in_progress")
    assert w.update("bob", tkt, status=status).status == status


@pytest.mark.parametrize("status", ["open", "closed", "DONE", "active", ""])
def test_an_unknown_status_is_refused(w, status):
    tkt = ticket(w, "Work")
    with pytest.raises(InvalidInput) as refused:
        w.update("ada", tkt, status=status)
    assert refused.value.field == "status" and w.now(tkt).status == "backlog"


@pytest.mark.parametrize("priority", [1, 2, 3, 4])
def test_priority_is_one_highest_to_four(w, priority):
    assert ticket(w, "Work", priority=priority).fields["priority"] == priority


@pytest.mark.parametrize("priority", [0, 5, -1, 2.5, "1", True, None],
                         ids=["zero", "five", "negative", "fraction", "text", "boolean", "none"])
def test_a_priority_outside_one_to_four_is_refused(w, priority):
    with pytest.raises(InvalidInput) as refused:
        ticket(w, "Work", priority=priority)
    assert refused.value.field == "priority"
    tkt = ticket(w, "Work")
    with pytest.raises(InvalidInput):
        w.update("ada", tkt, fields={"priority": priority})
    assert w.now(tkt).fields["priority"] == 3


@pytest.mark.parametrize(("field", "value"), [
    ("ticket_type", "chore"), ("ticket_type", None), ("due_date", "next friday"), ("labels", "billing"),
    ("labels", None), ("estimate", 3)],
    ids=["unknown-type", "no-type", "not-a-date", "labels-not-a-list", "labels-none", "unknown-field"])
def test_other_fields_are_checked_by_name(w, field, value):
    with pytest.raises(InvalidInput) as refused:
        ticket(w, "Work", **{field: value})
    assert refused.value.field == field


@pytest.mark.parametrize(("assignee", "allowed"), [
    ("bob", True), ("ada", True),
    ("oscar", False),  # a member of another organisation only
    ("nobody", False),
], ids=["member", "owner", "member-of-another-organisation", "no-such-user"])
def test_the_assignee_must_be_a_member_of_the_organisation(w, assignee, allowed):
    user_id = w.ids.get(assignee, 10**9)
    if allowed:
        assert ticket(w, "Work", assignee_id=user_id).fields["assignee_id"] == user_id
        return
    with pytest.raises(InvalidInput) as refused:
        ticket(w, "Work", assignee_id=user_id)
    assert refused.value.field == "assignee_id"


def test_a_former_member_stays_assignee_until_someone_changes_it(w):
    tkt = ticket(w, "Work", assignee_id=w.ids["cy"])
    w.directory.remove_membership(w.org, w.ids["cy"])
    assert w.update("bob", tkt, fields={"priority": 1}).fields["assignee_id"] == w.ids["cy"]
    w.update("bob", tkt, fields={"assignee_id": None})
    with pytest.raises(InvalidInput):
        w.update("bob", tkt, fields={"assignee_id": w.ids["cy"]})


def test_a_viewer_reads_a_ticket_but_changes_nothing(w):
    app = ticket(w, "Release 2.0", w.project("APP"))
    assert w.do("bob", tickets.readable_ticket, app.display_id).title == "Release 2.0"
    with pytest.raises(AccessDenied):
        w.update("bob", app, status="done")


# --- the parent ticket -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("parent", "error"), [
    ("secret", NotFound), ("missing", NotFound), ("doc", InvalidInput), ("child", InvalidInput),
    ("itself", InvalidInput)],
    ids=["parent-bob-cannot-read", "no-such-parent", "parent-is-a-doc", "its-own-sub-ticket", "itself"])
def test_a_parent_ticket_must_be_readable_and_never_make_a_cycle(w, parent, error):
    top = ticket(w, "Parent", by="bob")
    parents = {"secret": ticket(w, "Secret parent", w.project("SEC")).id, "missing": 10**9,
               "doc": w.create("bob", RecordType.DOC, "A doc", w.org_scope).id,
               "child": ticket(w, "Child", by="bob", parent_id=top.id).id, "itself": top.id}
    with pytest.raises(error) as refused:
        w.update("bob", top, fields={"parent_id": parents[parent]})
    assert refused.value.field == "parent_id" and "Secret" not in str(refused.value)
    assert w.now(top).version == 1


def test_a_parent_in_another_readable_scope_is_fine_for_tickets(w):
    app = ticket(w, "APP work", w.project("APP"))
    assert ticket(w, "Follow-up", by="bob", parent_id=app.id).fields["parent_id"] == app.id
    with pytest.raises(NotFound):
        ticket(w, "x", by="bob", parent_id=ticket(w, "SEC work", w.project("SEC")).id)


# --- activity ---------------------------------------------------------------------------------------------


def test_the_activity_log_records_creation_and_every_change_with_old_new_and_who(w):
    epic = ticket(w, "Billing epic", ticket_type="epic")
    tkt = ticket(w, "Invoices are late")
    for change in ({"title": "Invoices are very late"}, {"body": "Since Monday."}, {"status": "in_progress"},
                   {"fields": {"priority": 1, "assignee_id": w.ids["bob"], "labels": ["urgent", "billing"],
                               "due_date": "2026-12-31", "ticket_type": "bug"}},
                   {"fields": {"parent_id": epic.id}}, {"scope": w.private("ada")}, {"scope": w.org_scope}):
        w.update("ada", tkt, **change)
    w.update("bob", tkt, fields={"labels": ["billing"]})

    log = w.do("bob", tickets.activity_log, w.activity, tkt.display_id)
    org, private = {"kind": "organisation", "id": w.org}, {"kind": "user", "id": w.ids["ada"]}
    assert [(e.change.field, e.change.old, e.change.new) for e in log] == [
        ("created", None, "Invoices are late"),
        ("title", "Invoices are late", "Invoices are very late"),
        ("body", "", "Since Monday."),
        ("status", "backlog", "in_progress"),
        ("assignee_id", None, w.ids["bob"]),
        ("due_date", None, "2026-12-31"),
        ("labels", [], ["billing", "urgent"]),
        ("priority", 3, 1),
        ("ticket_type", "task", "bug"),
        ("parent_id", None, epic.id),
        ("scope", org, private),
        ("scope", private, org),
        ("labels", ["billing", "urgent"], ["billing"]),
    ]
    assert [e.actor_id for e in log] == [w.ids["ada"]] * 12 + [w.ids["bob"]]
    assert not any(e.ai_applied for e in log)
    assert [e.at for e in log] == sorted(e.at for e in log)
    after = w.do("bob", tickets.activity_log, w.activity, tkt.display_id, after_id=log[-2].id)
    assert [e.change.field for e in after] == ["labels"]


def test_a_save_that_changes_nothing_logs_nothing(w):
    tkt = ticket(w, "Work", priority=2)
    w.update("ada", tkt, fields={"priority": 2}, title="Work")
    assert [e.change.field for e in w.do("ada", tickets.activity_log, w.activity, tkt.display_id)] == ["created"]


def test_the_activity_of_a_ticket_one_cannot_read_is_not_found(w):
    hidden = ticket(w, "Rotate the root keys", w.project("SEC"))
    w.update("ada", hidden, title="Rotate keys by Friday")
    with pytest.raises(NotFound) as refused:
        w.do("bob", tickets.activity_log, w.activity, hidden.display_id)
    assert "root keys" not in str(refused.value)


@pytest.mark.parametrize("limit", [0, tickets.MAX_PAGE + 1], ids=["zero", "over-the-page-size"])
def test_an_activity_or_comment_page_size_out_of_range_is_refused(w, limit):
    tkt = ticket(w, "Work")
    for read, port in ((tickets.activity_log, w.activity), (tickets.list_comments, w.comments)):
        with pytest.raises(InvalidInput) as refused:
            w.do("ada", read, port, tkt.display_id, limit=limit)
        assert refused.value.field == "limit"


# --- comments ---------------------------------------------------------------------------------------------


def comment(w: World, who: str, tkt, body: str):
    return w.do(who, tickets.add_comment, w.comments, tkt.display_id, body)


def test_readers_list_comments_oldest_first_and_writers_add_them(w):
    ops = ticket(w, "Pager noise", w.project("OPS"))
    mine = comment(w, "bob", ops, "  I can take this.\x07  ")
    comment(w, "ada", ops, "Thanks!")
    assert (mine.author_id, mine.body) == (w.ids["bob"], "I can take this.")
    assert [c.body for c in w.do("cy", tickets.list_comments, w.comments, ops.display_id)] == [
        "I can take this.", "Thanks!"]
    assert [c.body for c in w.do("cy", tickets.list_comments, w.comments, ops.display_id, after_id=mine.id)] == [
        "Thanks!"]


@pytest.mark.parametrize(("who", "action", "error"), [
    ("ada", "edit", AccessDenied),  # not even the organisation owner
    ("ada", "delete", AccessDenied),
    ("cy", "edit", AccessDenied),
    ("cy", "delete", AccessDenied),
    ("bob", "edit", None),
    ("bob", "delete", None),
])
def test_only_a_comments_author_edits_or_deletes_it(w, who, action, error):
    ops = ticket(w, "Pager noise", w.project("OPS"))
    mine = comment(w, "bob", ops, "I can take this.")
    act = (tickets.edit_comment, w.comments, ops.display_id, mine.id, "Bob said nothing") if action == "edit" else (
        tickets.delete_comment, w.comments, ops.display_id, mine.id)
    if error is not None:
        with pytest.raises(error):
            w.do(who, *act)
        assert w.comments.get(ops.id, mine.id) == mine
        return
    w.do(who, *act)
    after = w.comments.get(ops.id, mine.id)
    if action == "edit":
        assert after.body == "Bob said nothing" and after.updated_at > after.created_at
    else:
        assert after is None


@pytest.mark.parametrize("body", ["", "   ", "\x00\x01", "x" * (tickets.MAX_COMMENT + 1)],
                         ids=["empty", "blank", "control-characters-only", "too-long"])
def test_a_comment_needs_a_body_of_sensible_length(w, body):
    ops = ticket(w, "Pager noise", w.project("OPS"))
    mine = comment(w, "bob", ops, "first")
    with pytest.raises(InvalidInput):
        comment(w, "bob", ops, body)
    with pytest.raises(InvalidInput):
        w.do("bob", tickets.edit_comment, w.comments, ops.display_id, mine.id, body)
    assert [c.body for c in w.comments.list(ops.id, after_id=None, limit=10)] == ["first"]


def test_a_viewer_reads_comments_but_writes_none(w):
    app = ticket(w, "APP bug", w.project("APP"))
    comment(w, "ada", app, "repro steps")
    assert [c.body for c in w.do("bob", tickets.list_comments, w.comments, app.display_id)] == ["repro steps"]
    with pytest.raises(AccessDenied):
        comment(w, "bob", app, "+1")


def test_an_author_who_can_no_longer_write_the_ticket_cannot_change_their_comment(w):
    app = ticket(w, "APP bug", w.project("APP"))
    w.directory.put_grant(w.projects["APP"], user_id=w.ids["bob"], group_id=None, role=ProjectRole.MEMBER)
    mine = comment(w, "bob", app, "on it")
    w.directory.put_grant(w.projects["APP"], user_id=w.ids["bob"], group_id=None, role=ProjectRole.VIEWER)
    for act in ((tickets.edit_comment, w.comments, app.display_id, mine.id, "done"),
                (tickets.delete_comment, w.comments, app.display_id, mine.id)):
        with pytest.raises(AccessDenied):
            w.do("bob", *act)
    assert w.comments.get(app.id, mine.id) == mine


def test_comments_of_a_ticket_one_cannot_read_are_not_found_whatever_the_action(w):
    sec = ticket(w, "SEC finding", w.project("SEC"))
    cve = comment(w, "ada", sec, "CVE details")
    for act in ((tickets.list_comments, w.comments, sec.display_id),
                (tickets.add_comment, w.comments, sec.display_id, "hi"),
                (tickets.edit_comment, w.comments, sec.display_id, cve.id, "x"),
                (tickets.delete_comment, w.comments, sec.display_id, cve.id)):
        with pytest.raises(NotFound) as refused:
            w.do("bob", *act)
        assert "CVE" not in str(refused.value)
    assert w.comments.get(sec.id, cve.id) == cve


def test_a_comment_id_resolves_only_under_its_own_ticket(w):
    ops = ticket(w, "Pager noise", w.project("OPS"))
    other = ticket(w, "Other")
    theirs = comment(w, "ada", other, "mine")
    with pytest.raises(NotFound):
        w.do("ada", tickets.edit_comment, w.comments, ops.display_id, theirs.id, "moved?")
    with pytest.raises(InvalidInput):
        w.do("ada", tickets.add_comment, w.comments, w.create("ada", RecordType.DOC, "A doc",
                                                               w.org_scope).display_id, "x")


def test_one_comment_is_read_by_the_tickets_readers_and_by_nobody_else_under_any_other_id(w):
    app, sec = ticket(w, "APP ticket", w.project("APP")), ticket(w, "SEC finding", w.project("SEC"))
    note, cve = comment(w, "ada", app, "Ship it"), comment(w, "ada", sec, "CVE details")
    assert w.do("bob", tickets.readable_comment, w.comments, app.display_id, note.id) == note  # a viewer reads it
    gone = comment(w, "ada", app, "never mind")
    w.do("ada", tickets.delete_comment, w.comments, app.display_id, gone.id)
    doc = w.create("ada", RecordType.DOC, "A doc", w.org_scope)
    for who, display_id, comment_id in (("bob", sec.display_id, cve.id),  # a ticket Bob cannot read
                                        ("bob", app.display_id, cve.id),  # another ticket's comment, under his
                                        ("ada", app.display_id, gone.id),  # deleted
                                        ("ada", app.display_id, 10_000),  # never made
                                        ("ada", doc.display_id, note.id)):  # a record that is not a ticket
        with pytest.raises(NotFound) as refused:
            w.do(who, tickets.readable_comment, w.comments, display_id, comment_id)
        assert "CVE" not in str(refused.value)


# --- links ------------------------------------------------------------------------------------------------


def link(w: World, who: str, source, kind: str, target: str):
    return w.do(who, tickets.add_link, w.links, source.display_id, kind, target)


@pytest.fixture
def three(w):
    """A ticket in OPS (Bob writes), APP (Bob views) and SEC (Bob cannot read)."""
    return {key: ticket(w, f"{key} ticket", w.project(key)) for key in ("OPS", "APP", "SEC")}


LINK_CASES = [
    ("bob", "OPS", "APP", "blocks", None, None),  # writes the source, reads the target
    ("bob", "APP", "OPS", "blocks", AccessDenied, None),  # a viewer of the source
    ("bob", "OPS", "SEC", "blocks", NotFound, None),  # cannot read the target
    ("bob", "OPS", "OPS-999", "blocks", NotFound, None),
    ("bob", "OPS", "doc", "blocks", InvalidInput, "target"),
    ("bob", "OPS", "OPS", "duplicates", InvalidInput, "target"),  # itself
    ("bob", "OPS", "APP", "causes", InvalidInput, "kind"),
    ("bob", "OPS", "not an id", "blocks", InvalidInput, "display_id"),
    ("ada", "OPS", "SEC", "duplicates", None, None),
]


@pytest.mark.parametrize(("who", "source", "target", "kind", "error", "field"), LINK_CASES,
                         ids=[f"{who}-{kind}-{source}-to-{target}-{error.__name__ if error else 'linked'}"
                              for who, source, target, kind, error, _ in LINK_CASES])
def test_a_link_needs_write_on_the_source_and_read_on_a_ticket_target(w, three, who, source, target, kind, error,
                                                                       field):
    names = {**{k: str(t.display_id) for k, t in three.items()},
             "doc": str(w.create("ada", RecordType.DOC, "A doc", w.org_scope).display_id)}
    target_id = names.get(target, target)
    if error is None:
        made = link(w, who, three[source], kind, target_id)
        assert (made.kind.value, made.outgoing, str(made.other.display_id)) == (kind, True, target_id)
        return
    with pytest.raises(error) as refused:
        link(w, who, three[source], kind, target_id)
    assert refused.value.field == field and "SEC ticket" not in str(refused.value)
    assert w.links.rows == {}


def test_links_show_from_both_ends_and_only_where_the_other_end_is_readable(w, three):
    ops, app, sec = three["OPS"], three["APP"], three["SEC"]
    link(w, "ada", ops, "blocks", str(sec.display_id))
    relates = link(w, "bob", ops, "relates_to", str(app.display_id))

    assert [str(x.other.display_id) for x in w.do("ada", tickets.list_links, w.links, ops.display_id)] == [
        str(sec.display_id), str(app.display_id)]
    assert [(x.id, x.outgoing) for x in w.do("bob", tickets.list_links, w.links, ops.display_id)] == [
        (relates.id, True)]
    incoming = w.do("bob", tickets.list_links, w.links, app.display_id)
    assert [(x.kind.value, x.outgoing, x.other.display_id) for x in incoming] == [
        ("relates_to", False, ops.display_id)]
    assert incoming[0].created_by == w.ids["bob"]


@pytest.mark.parametrize(("first", "second"), [
    (("OPS", "blocks", "APP"), ("OPS", "blocks", "APP")),
    (("OPS", "relates_to", "APP"), ("OPS", "relates_to", "APP")),
    (("OPS", "relates_to", "APP"), ("APP", "relates_to", "OPS")),  # the same link, seen from B
], ids=["same-blocks-twice", "same-relates-to-twice", "relates-to-is-symmetric"])
def test_a_link_that_exists_is_a_conflict(w, three, first, second):
    link(w, "ada", three[first[0]], first[1], str(three[first[2]].display_id))
    with pytest.raises(Conflict):
        link(w, "ada", three[second[0]], second[1], str(three[second[2]].display_id))
    assert len(w.links.rows) == 1


def test_blocks_is_directed_so_both_directions_may_exist(w, three):
    link(w, "ada", three["OPS"], "blocks", str(three["APP"].display_id))
    back = link(w, "ada", three["APP"], "blocks", str(three["OPS"].display_id))
    assert back.outgoing and back.other.display_id == three["OPS"].display_id


def test_a_link_is_deleted_by_writers_of_the_ticket_viewed_and_only_when_its_other_end_is_readable(w, three):
    ops, app, sec = three["OPS"], three["APP"], three["SEC"]
    hidden = link(w, "ada", ops, "blocks", str(sec.display_id))
    relates = link(w, "bob", ops, "relates_to", str(app.display_id))
    with pytest.raises(NotFound):
        w.do("bob", tickets.delete_link, w.links, ops.display_id, hidden.id)  # its other end is hidden
    with pytest.raises(AccessDenied):
        w.do("bob", tickets.delete_link, w.links, app.display_id, relates.id)  # viewer on APP's side
    with pytest.raises(NotFound):
        w.do("bob", tickets.delete_link, w.links, ops.display_id, 10**9)
    w.do("bob", tickets.delete_link, w.links, ops.display_id, relates.id)
    assert w.do("bob", tickets.list_links, w.links, ops.display_id) == []
    assert set(w.links.rows) == {hidden.id}

