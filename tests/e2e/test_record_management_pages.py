"""Deleting docs, editing and deleting your own comments, the board's "Move" form (what its drag and drop posts)
and the list columns, over HTTP (issue 18 items 4 and 5). Attacks: a reader deleting a doc, someone else's
comment, another organisation's record, no CSRF token."""

from __future__ import annotations

import re

from tests.e2e.test_management_pages import join, post
from tests.e2e.test_pages_security import set_up


def create(client, record_type: str, title: str, page: str, **fields: str) -> str:
    response = post(client, "/o/1/records", {"type": record_type, "title": title, "scope": "organisation",
                                             **fields}, page=page)
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def test_a_writer_deletes_a_doc_after_confirming_and_a_reader_is_not_offered_it(app_client):
    ada = app_client()
    set_up(ada)
    bob, _ = join(app_client, ada, "Bob")
    ada.post("/api/organisations/1/projects", json={"key": "SEC", "name": "Security", "visibility": "restricted"})
    parent = create(ada, "doc", "Handbook", "/o/1/docs")
    child = post(ada, "/o/1/records", {"type": "doc", "title": "Holidays", "scope": "organisation", "parent_id": str(
        ada.get(f"/api/organisations/1/records/{parent}").json()["id"])}, page="/o/1/docs").headers["location"]
    page = ada.get(f"/o/1/r/{parent}").text
    assert 'id="delete-doc"' in page and f"Delete {parent} for good" in page

    refused = post(ada, f"/o/1/r/{parent}/delete", {}, page="/o/1/docs", htmx="delete-form")
    assert refused.status_code == 409 and "sub-pages" in refused.text
    assert post(ada, f"/o/1/r/{child.rsplit('/', 1)[1]}/delete", {}, page="/o/1/docs").status_code == 303

    # Bob reads the org doc too (open to all members) and writes it; a private doc of Ada's he cannot even see.
    secret = post(ada, "/o/1/records", {"type": "doc", "title": "Mine", "scope": "user"}, page="/o/1/docs")
    secret_id = secret.headers["location"].rsplit("/", 1)[1]
    assert post(bob, f"/o/1/r/{secret_id}/delete", {}, page="/o/1/docs").status_code == 404
    assert ada.get(f"/api/organisations/1/records/{secret_id}").status_code == 200
    forged = ada.post(f"/o/1/r/{parent}/delete", follow_redirects=False, data={})
    assert forged.status_code == 403 and ada.get(f"/api/organisations/1/records/{parent}").status_code == 200

    deleted = post(ada, f"/o/1/r/{parent}/delete", {}, page="/o/1/docs")
    assert deleted.status_code == 303 and deleted.headers["location"] == f"/o/1/docs?deleted={parent}"
    assert f"{parent} was deleted." in ada.get(deleted.headers["location"]).text
    assert ada.get(f"/api/organisations/1/records/{parent}").status_code == 404
    assert "<script>" not in ada.get("/o/1/docs?deleted=<script>").text  # only a display ID is echoed
    audit = ada.get("/o/1/settings/audit").text
    assert "deleted a record" in audit and parent in audit


def test_only_a_comments_author_edits_or_deletes_it(app_client):
    ada = app_client()
    set_up(ada)
    bob, _ = join(app_client, ada, "Bob")
    ticket = create(ada, "ticket", "Renew the certificate", "/o/1/tickets")
    assert post(ada, f"/o/1/r/{ticket}/comments", {"body": "I will do it"}, page="/o/1/tickets").status_code == 303
    comment = ada.get(f"/api/organisations/1/records/{ticket}/comments").json()[0]["id"]

    mine = ada.get(f"/o/1/r/{ticket}").text
    assert f"edit_comment={comment}" in mine and "Delete your comment" in mine
    theirs = bob.get(f"/o/1/r/{ticket}").text
    assert f"edit_comment={comment}" not in theirs and "Delete your comment" not in theirs
    assert 'id="comment-edit-form-' in ada.get(f"/o/1/r/{ticket}?edit_comment={comment}").text

    for path, data in ((f"/o/1/r/{ticket}/comments/{comment}", {"body": "Bob was here"}),
                       (f"/o/1/r/{ticket}/comments/{comment}/delete", {})):
        assert post(bob, path, data, page="/o/1/tickets").status_code == 403, path
    edited = post(ada, f"/o/1/r/{ticket}/comments/{comment}", {"body": "Done on Monday"}, page="/o/1/tickets")
    assert edited.status_code == 303 and edited.headers["location"].endswith(f"#comment-{comment}")
    page = ada.get(f"/o/1/r/{ticket}").text
    assert "Done on Monday" in page and "edited" in page
    empty = post(ada, f"/o/1/r/{ticket}/comments/{comment}", {"body": " "}, page="/o/1/tickets")
    assert empty.status_code == 422 and "body" in empty.text
    assert post(ada, f"/o/1/r/{ticket}/comments/{comment}/delete", {}, page="/o/1/tickets").status_code == 303
    assert ada.get(f"/api/organisations/1/records/{ticket}/comments").json() == []


def test_one_comment_comes_as_the_page_lists_it_to_the_tickets_readers_and_to_nobody_else(app_client):
    """GET /o/{org}/r/{ticket}/comments/{id}: what static/live.js appends. Attacks: a ticket one cannot read,
    another ticket's comment, a deleted one, another organisation's, a doc — all the same 404, never the text."""
    ada = app_client()
    set_up(ada)
    bob, _ = join(app_client, ada, "Bob")
    ticket = create(ada, "ticket", "Renew the certificate", "/o/1/tickets")
    other = create(ada, "ticket", "Rotate the keys", "/o/1/tickets")
    secret = post(ada, "/o/1/records", {"type": "ticket", "title": "Mine", "scope": "user"}, page="/o/1/tickets")
    secret = secret.headers["location"].rsplit("/", 1)[1]
    doc = create(ada, "doc", "Handbook", "/o/1/docs")
    ids = {}
    for record, body in ((ticket, "I will do it **today**"), (other, "Other words"), (secret, "Private plans"),
                         (ticket, "Withdrawn")):
        assert post(ada, f"/o/1/r/{record}/comments", {"body": body}, page="/o/1/tickets").status_code == 303
        ids[body] = ada.get(f"/api/organisations/1/records/{record}/comments").json()[-1]["id"]
    assert post(ada, f"/o/1/r/{ticket}/comments/{ids['Withdrawn']}/delete", {}, page="/o/1/tickets").status_code == 303
    beta = ada.post("/api/organisations", json={"name": "Beta"}).json()["id"]
    beta_ticket = ada.post(f"/api/organisations/{beta}/records", json={
        "type": "ticket", "title": "Beta work", "scope": {"kind": "organisation"}}).json()["display_id"]
    beta_comment = ada.post(f"/api/organisations/{beta}/records/{beta_ticket}/comments",
                            json={"body": "Beta secrets"}).json()["id"]

    fragment = bob.get(f"/o/1/r/{ticket}/comments/{ids['I will do it **today**']}")
    assert fragment.status_code == 200 and fragment.headers["content-type"].startswith("text/html")
    article = re.search(r'<article class="comment" id="comment-\d+">.*?</article>', fragment.text, re.S).group(0)
    assert "Ada" in article and "<strong>today</strong>" in article and "Delete your comment" not in article
    assert article in bob.get(f"/o/1/r/{ticket}").text  # exactly as the page lists it
    mine = ada.get(f"/o/1/r/{ticket}/comments/{ids['I will do it **today**']}").text
    assert "Delete your comment" in mine and f"edit_comment={ids['I will do it **today**']}" in mine

    for path, text in ((f"/o/1/r/{secret}/comments/{ids['Private plans']}", "Private plans"),  # unreadable
                       (f"/o/1/r/{ticket}/comments/{ids['Private plans']}", "Private plans"),  # under a readable one
                       (f"/o/1/r/{ticket}/comments/{ids['Other words']}", "Other words"),  # another ticket's
                       (f"/o/1/r/{ticket}/comments/{ids['Withdrawn']}", "Withdrawn"),  # deleted
                       (f"/o/1/r/{ticket}/comments/{beta_comment}", "Beta secrets"),  # another organisation's
                       (f"/o/1/r/{beta_ticket}/comments/{beta_comment}", "Beta secrets"),  # not a member there
                       (f"/o/1/r/{doc}/comments/{ids['I will do it **today**']}", "today"),  # not a ticket
                       (f"/o/1/r/{ticket}/comments/{ids['I will do it **today**']}?project=NOPE", "today")):
        refused = bob.get(path)
        assert refused.status_code == 404 and text not in refused.text, path
    assert app_client().get(f"/o/1/r/{ticket}/comments/{ids['I will do it **today**']}",
                            follow_redirects=False).status_code in (302, 303, 401)  # signed out: nothing


def test_the_board_moves_a_card_with_its_form_and_lists_show_people_priorities_and_risk_ratings(app_client):
    ada = app_client()
    set_up(ada)
    me = ada.get("/api/me").json()["id"]
    ticket = create(ada, "ticket", "Renew the certificate", "/o/1/tickets", priority="1", assignee_id=str(me),
                    due_date="2026-12-31", ticket_type="bug")
    board = ada.get("/o/1/tickets?view=board").text
    headers = re.findall(r'<h3 id="col-[a-z_]+">([^<]+) <span', board)
    assert headers == ["Backlog", "Todo", "In progress", "Blocked", "In review", "Done"]  # workflow order
    assert 'src="/static/board.js"' in board and "P1" in board and "due 2026-12-31" in board
    moved = post(ada, f"/o/1/r/{ticket}/status", {"status": "in_progress", "version": "1", "back": "board"},
                 page="/o/1/tickets?view=board")
    assert moved.status_code == 303 and moved.headers["location"] == "/o/1/tickets?view=board"
    assert ada.get(f"/api/organisations/1/records/{ticket}").json()["status"] == "in_progress"
    stale = post(ada, f"/o/1/r/{ticket}/status", {"status": "done", "version": "1", "back": "board"},
                 page="/o/1/tickets?view=board", htmx="x")
    assert stale.status_code == 409  # what the board's script shows when someone moved it first

    listing = ada.get("/o/1/tickets").text
    for text in ("<th scope=\"col\">Assignee</th>", "<th scope=\"col\">Priority</th>", "Ada", "P1", "2026-12-31"):
        assert text in listing, text
    record = ada.get(f"/o/1/r/{ticket}").text
    assert "<dt>Assignee</dt>" in record and "<dt>Due date</dt>" in record and "assignee_id" not in record
    activity = record[record.index('<ul class="activity">'):][:600]
    assert "status backlog → in progress" in activity, activity

    create(ada, "risk", "Vendor lock-in", "/o/1/risks", severity="4", likelihood="2", owner_id=str(me))
    risks = ada.get("/o/1/risks").text
    assert "<th scope=\"col\">Severity</th>" in risks and "<th scope=\"col\">Likelihood</th>" in risks
    assert "4<span class=\"muted\">/5</span>" in risks and "2<span class=\"muted\">/5</span>" in risks

    snapshot = create(ada, "snapshot", "State of things", "/o/1/snapshots", snapshot_type="current_company_state")
    shown = ada.get(f"/o/1/r/{snapshot}").text
    assert "Current company state" in shown and "current_company_state</dd>" not in shown
