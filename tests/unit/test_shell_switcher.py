"""Where the header's organisation/project switcher goes (tow_http.accounts.pages.switched_to): the same page
with the project replaced, never another site or another organisation's page."""

from __future__ import annotations

import pytest

import tow_http.pages  # noqa: F401 - the page modules import each other through it
from tow_http.accounts.pages import switched_to


@pytest.mark.parametrize(("org", "project", "back", "target"), [
    (1, "APP", "/o/1/tickets?view=board", "/o/1/tickets?view=board&project=APP"),
    (1, "", "/o/1/tickets?view=board&project=APP", "/o/1/tickets?view=board"),
    (1, "SEC", "/o/1/docs?project=APP&cursor=abc", "/o/1/docs?project=SEC"),  # no stale paging cursor
    (1, "APP", "/o/1/r/DOC-3", "/o/1/r/DOC-3?project=APP"),
    (2, "", "/o/1/docs", "/o/2/today"),  # another organisation opens on its Today
    (1, "APP", "https://evil.example/o/1/docs", "/o/1/today?project=APP"),
    (1, "", "//evil.example/o/1/docs", "/o/1/today"),
    (1, "", "/o/1//evil.example", "/o/1/today"),
    (1, "", "/o/1/docs\\..\\x", "/o/1/today"),
    (1, "", "", "/o/1/today"),
    (1, "", "/o/12/docs", "/o/1/today"),
])
def test_the_switcher_keeps_the_page_only_within_the_same_organisation(org, project, back, target):
    assert switched_to(org, project, back) == target
