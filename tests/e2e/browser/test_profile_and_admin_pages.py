"""Avatars and logos, ticket fields, the data-egress ledger and the import page, in Chromium."""

from __future__ import annotations

import io
import re

from PIL import Image
from playwright.sync_api import expect

from tests.e2e.browser.test_workspace_flows import set_up_server, shot
from tow_core.ai import EgressPurpose
from tow_core.egress import EgressEntry


def png(path, colour: str) -> str:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return str(path)


def test_avatar_logo_ticket_fields_egress_ledger_and_import(new_page, live_server, tmp_path):
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)

    # Profile image, from the user menu; a file that is not an image is refused with a message.
    ada.locator(".user-menu summary").click()
    ada.get_by_role("link", name="Your profile").click()
    fake = tmp_path / "portrait.png"
    fake.write_text("<svg onload=alert(1)>")
    ada.get_by_label("Set profile image").set_input_files(str(fake))
    ada.get_by_role("button", name="Upload").click()
    expect(ada.get_by_text("not a PNG, JPEG, GIF or WebP image")).to_be_visible()
    ada.go_back()
    ada.get_by_label("Set profile image").set_input_files(png(tmp_path / "ada.png", "teal"))
    ada.get_by_role("button", name="Upload").click()
    expect(ada.locator(".user-menu summary img.avatar")).to_be_visible()
    expect(ada.get_by_role("img", name="Profile image")).to_be_visible()
    shot(ada, "profile")

    # The organisation logo, in organisation settings; it appears in the top bar.
    ada.get_by_role("link", name="Organisation").click()
    ada.get_by_label("Set organisation logo").set_input_files(png(tmp_path / "logo.png", "orange"))
    ada.locator("#org-logo-form").get_by_role("button", name="Upload").click()
    expect(ada.get_by_role("img", name="Acme logo")).to_be_visible()
    expect(ada.locator("#members img.avatar")).to_have_count(1)
    shot(ada, "organisation-logo")

    # A ticket with an assignee, a due date and labels.
    ada.get_by_role("link", name="Tickets").click()
    ada.get_by_label("Title").fill("Renew the TLS certificate")
    ada.get_by_label("Assignee").select_option(label="Ada")
    ada.get_by_label("Due date").fill("2026-12-31")
    ada.get_by_label("Labels (comma-separated)").fill("ops, security")
    ada.get_by_role("button", name="Create").click()
    expect(ada.locator(".fields")).to_contain_text("Ada")
    expect(ada.locator(".fields")).to_contain_text("2026-12-31")
    expect(ada.locator(".fields")).to_contain_text("ops, security")
    ada.get_by_role("link", name="Edit").click()
    expect(ada.get_by_label("Due date")).to_have_value("2026-12-31")
    ada.get_by_label("Due date").fill("2027-01-15")
    ada.get_by_role("button", name="Save").click()
    expect(ada.locator("#activity")).to_contain_text("due date 2026-12-31 → 2027-01-15")
    shot(ada, "ticket-fields")
    ada.get_by_role("link", name="Edit").click()
    ada.get_by_label("Assignee").select_option(label="Nobody")
    ada.get_by_role("button", name="Save").click()
    expect(ada.locator("#activity")).to_contain_text("assignee Ada → —")

    # The data-egress ledger (calls recorded as the AI adapters would), filtered by purpose.
    org_id = int(org_path.rsplit("/", 1)[1])
    ledger = live_server.container.egress_ledger()
    for purpose, records in ((EgressPurpose.EMBEDDING, ("TKT-1",)), (EgressPurpose.CHAT, ("DOC-4", "TKT-1"))):
        ledger.record(EgressEntry("openai", "https://api.openai.com/v1", "gpt-5-mini", purpose, 1, org_id, records,
                                  2048, 512, 840, "ok"))
    ada.get_by_role("link", name="Organisation").click()
    ada.get_by_role("link", name="Data-egress ledger").click()
    expect(ada.locator("table.list tbody tr")).to_have_count(2)
    ada.get_by_label("Purpose").select_option("chat")
    ada.get_by_role("button", name="Filter").click()
    expect(ada.locator("table.list tbody tr")).to_have_count(1)
    expect(ada.locator("table.list")).to_contain_text("DOC-4")
    shot(ada, "egress-ledger")

    # The import page in server settings: a broken file is refused with the offending path.
    ada.locator(".user-menu summary").click()
    ada.get_by_role("link", name="Server settings").click()
    ada.get_by_role("link", name="Import an organisation export file").click()
    broken = tmp_path / "export.json"
    broken.write_text('{"format": "tow-organisation-export", "version": 1, "organisation": 7}')
    ada.get_by_label("Organisation export file (.json)").set_input_files(str(broken))
    ada.get_by_role("button", name="Import").click()
    expect(ada.get_by_role("alert")).to_contain_text("Nothing was imported")
    expect(ada.get_by_role("alert")).to_contain_text("First offending path")
    shot(ada, "import")
    assert ada.problems == []
