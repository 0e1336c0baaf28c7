"""Writing in Chromium (issue 18 item 3): GitHub-flavoured Markdown on the page, the editor's toolbar,
pasting an image, completing a reference, and restoring a doc's earlier version."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.browser.test_workspace_flows import set_up_server, shot

GFM = """## Plan

| Task | Owner | Cost |
|:-----|:-----:|-----:|
| Backups | Ada | 10 |
| ~~Fax~~ | Bob | 0 |

- [x] book the room
- [ ] write the agenda

```python
def total(costs):
    return sum(costs)  # <b>not bold</b>
```
"""


def org_path(page: Page) -> str:
    return re.search(r"/o/\d+", page.url).group(0)


def new_doc(page: Page, title: str, body: str) -> None:
    page.goto(f"{org_path(page)}/docs")
    page.get_by_label("Title").fill(title)
    page.get_by_label("Text (Markdown)").fill(body)
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".page-head h1")).to_contain_text(title)


def edit(page: Page) -> None:
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_role("toolbar", name="Formatting")).to_be_visible()


def test_a_gfm_table_task_list_and_highlighted_code_render_on_the_page(new_page):
    ada = new_page()
    set_up_server(ada)
    new_doc(ada, "Offsite", GFM)
    table = ada.locator(".prose table")
    expect(table.locator("thead th")).to_have_text(["Task", "Owner", "Cost"])
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").nth(1).locator("td").first.locator("s")).to_have_text("Fax")
    assert table.locator("tbody td").nth(2).evaluate("td => getComputedStyle(td).textAlign") == "right"
    boxes = ada.locator(".prose input[type=checkbox]")
    expect(boxes).to_have_count(2)
    expect(boxes.first).to_be_checked()
    expect(boxes.first).to_be_disabled()
    expect(ada.get_by_label("write the agenda")).not_to_be_checked()
    keyword = ada.locator("pre.highlight .hl-k", has_text="def")
    expect(keyword).to_be_visible()
    assert keyword.evaluate("el => getComputedStyle(el).fontWeight") == "700"  # static/pygments.css applied
    expect(ada.locator("pre.highlight")).to_contain_text("<b>not bold</b>")
    shot(ada, "doc-gfm")
    assert ada.problems == []


def test_the_toolbar_bolds_a_selection_and_the_preview_and_page_show_it(new_page):
    ada = new_page()
    set_up_server(ada)
    new_doc(ada, "Launch", "We ship on Tuesday.")
    edit(ada)
    body = ada.locator("#f-body")
    body.evaluate("area => { area.focus(); area.setSelectionRange(11, 18); }")  # "Tuesday"
    ada.get_by_role("button", name="Bold").click()
    expect(body).to_have_value("We ship on **Tuesday**.")
    expect(ada.locator("#preview strong")).to_have_text("Tuesday")
    body.press("End")
    body.press("Enter")
    body.type("first step")
    ada.get_by_role("button", name="Task list").click()
    expect(body).to_have_value("We ship on **Tuesday**.\n- [ ] first step")
    ada.get_by_role("button", name="Save").click()
    expect(ada.locator(".prose strong")).to_have_text("Tuesday")
    expect(ada.locator(".prose input[type=checkbox]")).to_have_count(1)
    assert ada.problems == []


def test_typing_a_prefix_offers_readable_records_and_enter_inserts_the_reference(new_page):
    ada = new_page()
    set_up_server(ada)
    new_doc(ada, "Onboarding guide", "Start here.")
    new_doc(ada, "Release checklist", "Steps.")
    new_doc(ada, "Weekly notes", "Steps.")
    edit(ada)
    body = ada.locator("#f-body")
    body.press("End")
    body.type(" See DOC-")
    options = ada.get_by_role("listbox", name="Records to reference").get_by_role("option")
    expect(options).to_have_count(2)  # newest first, and never the page itself (DOC-3)
    expect(options.first).to_contain_text("DOC-2 Release checklist")
    body.press("ArrowDown")
    body.press("Enter")
    expect(body).to_have_value("Steps. See DOC-1")
    expect(ada.get_by_role("listbox", name="Records to reference")).to_be_hidden()
    body.type(" and [[Relea")
    expect(options).to_have_count(1)
    body.press("Tab")
    expect(body).to_have_value("Steps. See DOC-1 and DOC-2")
    ada.get_by_role("button", name="Save").click()
    expect(ada.locator("aside")).to_contain_text("Onboarding guide")  # "Cites" lists the reference
    assert ada.problems == []


def png_base64() -> str:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


PASTE = """(area, data) => {
  const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "chart.png", { type: "image/png" }));
  area.focus();
  area.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true }));
}"""


def test_pasting_an_image_uploads_it_to_the_record_and_shows_it_and_a_new_doc_says_save_first(new_page):
    ada = new_page()
    set_up_server(ada)
    ada.goto(f"{org_path(ada)}/docs")
    ada.get_by_label("Text (Markdown)").evaluate(PASTE, png_base64())
    expect(ada.locator(".editor-status")).to_have_text(re.compile("Save first"))
    expect(ada.get_by_label("Text (Markdown)")).to_have_value("")

    new_doc(ada, "Numbers", "The chart:")
    edit(ada)
    body = ada.locator("#f-body")
    body.press("End")
    body.evaluate(PASTE, png_base64())
    expect(body).to_have_value(re.compile(r"^The chart:!\[chart\.png\]\(/api/uploads/\d+/content\)$"))
    expect(ada.locator(".editor-status")).to_contain_text("Uploaded chart.png")
    written = body.input_value()

    # Over the upload limit: refused on the page, before a byte is sent (the server would refuse it too).
    sent = []
    ada.on("request", lambda request: sent.append(request.url) if request.method != "GET" and "/uploads" in request.url
           else None)
    body.evaluate("area => { area.dataset.maxBytes = '10'; area.dataset.maxLabel = '10 bytes'; }")
    body.evaluate(PASTE, png_base64())
    expect(ada.locator(".editor-status")).to_have_text(re.compile(r"larger than the upload limit \(10 bytes\)"))
    expect(body).to_have_value(written)
    assert sent == []

    ada.get_by_role("button", name="Save").click()
    image = ada.locator(".prose img[alt='chart.png']")
    expect(image).to_be_visible()
    # Visible is not loaded: wait for the browser to finish loading it (it may still be on its way under load).
    ada.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => img.naturalWidth") == 40  # loaded from this server
    expect(ada.locator("#files")).to_contain_text("chart.png")  # attached: readable as the record is
    assert ada.problems == []


def test_restoring_a_revision_brings_its_text_back_as_a_new_version(new_page):
    ada = new_page()
    set_up_server(ada)
    new_doc(ada, "Policy", "Original wording.")
    for text in ("Second wording.", "Third wording."):
        edit(ada)
        ada.locator("#f-body").fill(text)
        ada.get_by_role("button", name="Save").click()
        expect(ada.locator(".prose")).to_contain_text(text)
    expect(ada.locator(".page-head .meta")).to_contain_text("version 3")
    ada.get_by_role("link", name="Compare version 1 with the current version").click()
    expect(ada.locator(".diff-line.removed")).to_contain_text("Original wording.")
    expect(ada.locator(".diff-line.added")).to_contain_text("Third wording.")
    shot(ada, "doc-revision-diff")
    ada.get_by_role("link", name="Show version 1").click()
    expect(ada.locator(".prose")).to_have_text("Original wording.")
    ada.get_by_role("button", name="Restore version 1").click()
    expect(ada.locator(".page-head .meta")).to_contain_text("version 4")
    expect(ada.locator(".prose").first).to_have_text("Original wording.")
    revisions = ada.locator("#revisions")
    for version in (3, 2, 1):  # nothing was lost
        expect(revisions.get_by_role("link", name=f"Version {version}", exact=True)).to_be_visible()
    revisions.get_by_role("link", name="Version 3", exact=True).click()
    expect(ada.locator(".prose")).to_have_text("Third wording.")
    assert ada.problems == []
