"""Files on records in Chromium: attach from the record page, download, detach; outsiders get nothing."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.browser.test_workspace_flows import set_up_server, shot

CONTENT = b"quarterly numbers\n" + bytes(range(256)) * 64  # binary, 16 KiB and a bit


def test_attach_download_and_detach_a_file(new_page, tmp_path):
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    ada.goto(f"{org_path}/decisions")
    ada.get_by_label("Title").fill("Use PostgreSQL")
    ada.get_by_role("button", name="Create").click()
    expect(ada.locator(".page-head h1")).to_contain_text("DEC-1")

    source = tmp_path / "numbers <Q3>.bin"
    source.write_bytes(CONTENT)
    ada.get_by_label("Attach a file").set_input_files(str(source))
    ada.get_by_role("button", name="Upload").click()
    link = ada.locator("#files a", has_text="numbers")
    expect(link).to_be_visible()
    shot(ada, "record-files")

    with ada.expect_download() as download_info:
        link.click()
    download = download_info.value
    saved = tmp_path / "downloaded"
    download.save_as(saved)
    assert saved.read_bytes() == CONTENT

    href = link.get_attribute("href")
    # A stranger's browser, signed in to nothing, gets no bytes.
    stranger = new_page()
    response = stranger.request.get(href)
    assert response.status == 401 and CONTENT[:20] not in response.body()

    ada.get_by_role("button", name=re.compile("Detach numbers")).click()
    expect(ada.locator("#files")).to_contain_text("No files.")
    assert ada.problems == []


def test_an_over_limit_file_is_refused_on_the_page_before_it_is_sent(new_page, tmp_path):
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    ada.goto(f"{org_path}/decisions")
    ada.get_by_label("Title").fill("Keep the backups")
    ada.get_by_role("button", name="Create").click()
    expect(ada.locator("#f-file-limit")).to_have_text(re.compile(r"Up to \d+\.\d MiB\."))
    limit = int(ada.get_by_label("Attach a file").get_attribute("data-max-bytes"))
    big = tmp_path / "too big.bin"
    with big.open("wb") as out:
        out.truncate(limit + 1)
    sent = []
    ada.on("request", lambda request: sent.append(request.url) if "/attachments" in request.url else None)
    ada.get_by_label("Attach a file").set_input_files(str(big))
    expect(ada.locator("#f-file-error")).to_contain_text("larger than the limit")
    ada.get_by_role("button", name="Upload").click()
    expect(ada.locator("#files")).to_contain_text("No files.")
    assert sent == [] and ada.problems == []
