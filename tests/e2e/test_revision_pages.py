"""A doc's revisions in the browser over a real PostgreSQL (issue 18): the record page links each version,
a version renders, two versions compare line by line (escaped), Restore saves the old text as a new version
(CSRF-checked, refused when stale) — and every one of these is 404 for someone who cannot read the doc:
another person's private doc, a restricted project, a revoked grant, another organisation."""

from __future__ import annotations

import re

import pytest

from tests.e2e.org_world import shared_world

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def world(embedded_postgres, tmp_path_factory):
    yield from shared_world(embedded_postgres, tmp_path_factory, "revision_pages")


def saved_three_times(world, scope, client=None):
    """v1 "Plan"/"one", v2 adds "<script>two</script>", v3 "Plan B" with line two changed."""
    client = client or world.ada
    plan = world.create(client, type="doc", scope=scope, title="Plan", body="one")
    url = f"{world.base}/records/{plan['display_id']}"
    assert client.patch(url, json={"version": 1, "body": "one\n<script>two</script>"}).status_code == 200
    assert client.patch(url, json={"version": 2, "title": "Plan B", "body": "one\n**2**\nthree"}).status_code == 200
    return plan["display_id"]


def page_of(world, display_id: str) -> str:
    return f"/o/{world.org}/r/{display_id}"


def test_the_record_page_links_every_version_and_a_version_renders_as_it_was(world):
    did = saved_three_times(world, world.scope("OPS"))
    record = world.bob.get(page_of(world, did)).text
    assert f'href="{page_of(world, did)}/revisions/2"' in record and f'href="{page_of(world, did)}/revisions/1"' in record
    assert f'href="{page_of(world, did)}/compare?old=1"' in record
    assert f'action="{page_of(world, did)}/compare"' in record and '<option value="3" selected>3 (current)' in record

    shown = world.bob.get(f"{page_of(world, did)}/revisions/2")
    assert shown.status_code == 200
    assert "Version 2 of 3" in shown.text and "<h1><span class=\"id\">" in shown.text
    assert "&lt;script&gt;two&lt;/script&gt;" in shown.text and "<script>two" not in shown.text
    assert "Restore version 2" in shown.text
    current = world.bob.get(f"{page_of(world, did)}/revisions/3").text
    assert "Version 3 (current)" in current and "<strong>2</strong>" in current and "Restore version" not in current
    assert world.bob.get(f"{page_of(world, did)}/revisions/9").status_code == 404


def test_two_versions_compare_line_by_line_with_added_and_removed_marks_escaped(world):
    did = saved_three_times(world, world.scope("OPS"))
    diff = world.cy.get(f"{page_of(world, did)}/compare", params={"old": 2})
    assert diff.status_code == 200, diff.text
    text = diff.text
    assert "Changes from version 2 to version 3 (current)" in text
    assert '<li class="diff-line removed">' in text and "<code>&lt;script&gt;two&lt;/script&gt;</code>" in text
    assert '<li class="diff-line added">' in text and "<code>**2**</code>" in text and "<code>three</code>" in text
    assert '<li class="diff-line kept">' in text and "<code>one</code>" in text
    assert "2 lines added" in text and "1 line removed" in text
    assert "<del>Plan</del> → <ins>Plan B</ins>" in text
    between = world.cy.get(f"{page_of(world, did)}/compare", params={"old": 1, "new": 2}).text
    assert "Changes from version 1 to version 2" in between and "Title:" not in between
    assert world.cy.get(f"{page_of(world, did)}/compare", params={"old": "x"}).status_code == 400
    assert world.cy.get(f"{page_of(world, did)}/compare", params={"old": 1, "new": 7}).status_code == 404


def test_restore_saves_the_old_text_as_a_new_version_and_keeps_the_whole_history(world):
    did = saved_three_times(world, {"kind": "organisation"})
    url = f"{page_of(world, did)}/revisions/1"
    token = TOKEN.search(world.bob.get(url).text).group(1)
    stale = world.bob.post(f"{url}/restore", follow_redirects=False, data={"csrf_token": token, "version": "2"})
    assert stale.status_code == 409
    forged = world.bob.post(f"{url}/restore", follow_redirects=False, data={"csrf_token": "forged", "version": "3"})
    assert forged.status_code == 403
    restored = world.bob.post(f"{url}/restore", follow_redirects=False, data={"csrf_token": token, "version": "3"})
    assert restored.status_code == 303 and restored.headers["location"] == page_of(world, did)
    now = world.record(world.ada, did)
    assert (now["version"], now["title"], now["body"]) == (4, "Plan", "one")
    history = world.ada.get(f"{world.base}/records/{did}/revisions").json()
    assert [(r["version"], r["title"]) for r in history] == [(3, "Plan B"), (2, "Plan"), (1, "Plan")]
    assert history[0]["replaced_by"] == world.bob_id
    same = world.bob.post(f"{page_of(world, did)}/revisions/1/restore", follow_redirects=False,
                          data={"csrf_token": token, "version": "4"})
    assert same.status_code == 422 and "would change nothing" in same.text


def every_path(world, did: str) -> list[str]:
    return [f"{page_of(world, did)}/revisions/1", f"{page_of(world, did)}/revisions/3",
            f"{page_of(world, did)}/compare?old=1", f"{page_of(world, did)}/compare?old=1&new=2"]


def assert_hidden(world, client, did: str, version: int) -> None:
    for path in every_path(world, did):
        attempt = client.get(path)
        assert attempt.status_code == 404, path
        assert "Plan" not in attempt.text and "three" not in attempt.text
    token = TOKEN.search(client.get(f"/o/{world.org}/docs").text).group(1)
    restore = client.post(f"{page_of(world, did)}/revisions/1/restore", follow_redirects=False,
                          data={"csrf_token": token, "version": str(version)})
    assert restore.status_code == 404
    assert world.record(world.ada, did)["version"] == version


def test_revisions_of_a_doc_you_cannot_read_are_404_everywhere(world):
    secret = saved_three_times(world, world.scope("SEC"))
    assert_hidden(world, world.bob, secret, 3)
    private = saved_three_times(world, {"kind": "user", "id": world.ada_id})
    assert_hidden(world, world.cy, private, 3)


def test_a_revoked_grant_closes_the_revision_pages_at_once(world):
    did = saved_three_times(world, world.scope("APP"))  # Bob is a viewer of APP: he reads, cannot restore
    shown = world.bob.get(f"{page_of(world, did)}/revisions/1")
    assert shown.status_code == 200 and "restore-form" not in shown.text and "cannot restore" in shown.text
    token = TOKEN.search(shown.text).group(1)
    refused = world.bob.post(f"{page_of(world, did)}/revisions/1/restore", follow_redirects=False,
                             data={"csrf_token": token, "version": "3"})
    assert refused.status_code == 403 and world.record(world.ada, did)["version"] == 3
    grants = world.ada.get(f"{world.base}/projects/{world.projects['APP']}/grants").json()
    bobs = next(g for g in grants if g.get("user_id") == world.bob_id)
    assert world.ada.delete(f"{world.base}/projects/{world.projects['APP']}/grants/{bobs['id']}").status_code in (
        200, 204)
    assert_hidden(world, world.bob, did, 3)
    world.ada.post(f"{world.base}/projects/{world.projects['APP']}/grants",
                   json={"user_id": world.bob_id, "role": "viewer"})  # as the shared world had it
