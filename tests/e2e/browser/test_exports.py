"""Exports in Chromium: request one, the worker runs it, download the file; only its requester can."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.e2e.browser.test_workspace_flows import set_up_server, shot


def test_request_an_export_and_download_it(new_page, live_server, tmp_path):
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    ada.goto(f"{org_path}/docs")
    ada.get_by_label("Title").fill("Exported page")
    ada.get_by_role("button", name="Create").click()
    expect(ada.locator(".page-head h1")).to_contain_text("DOC-1")

    ada.goto(f"{org_path}/exports")
    ada.get_by_label("What").select_option("organisation")
    ada.get_by_role("button", name="Request export").click()
    expect(ada.locator("#exports")).to_contain_text("queued")
    assert live_server.container.job_worker().drain() >= 1  # what `tow worker` does in the background
    expect(ada.locator("#exports")).to_contain_text("completed", timeout=10_000)  # the table refreshes itself
    shot(ada, "exports")
    with ada.expect_download() as download_info:
        ada.get_by_role("link", name="Download").click()
    saved = tmp_path / "export.json"
    download_info.value.save_as(saved)
    assert "Exported page" in saved.read_text()
    json.loads(saved.read_text())  # a complete JSON document

    href = ada.get_by_role("link", name="Download").get_attribute("href")
    assert new_page().request.get(href).status == 401  # not signed in: nothing
    assert ada.problems == []
