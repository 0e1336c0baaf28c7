"""Every page type passes axe-core (issue 18 item 8) in light and dark mode with no serious or critical
violation, and at 390 px no page scrolls sideways (the board scrolls inside its own container).

axe-core is vendored (tests/e2e/browser/vendor/README.md: pinned, checked by its checksum, no Node.js needed) and
evaluated in each page through the DevTools protocol, so the pages' Content-Security-Policy stays as served.
The per-page results are printed in the suite's summary."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.browser.test_workspace_flows import PASSWORD, set_up_server
from tests.suite_figures import say

VENDOR = Path(__file__).resolve().parent / "vendor"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"  # axe-core 4.14.1
PHONE = 390
SERIOUS = ("serious", "critical")

RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({
    id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
}"""


def axe_source() -> str:
    source = (VENDOR / "axe.min.js").read_bytes()
    assert hashlib.sha256(source).hexdigest() == AXE_SHA256, "vendor/axe.min.js is not the pinned axe-core"
    return source.decode()


def serious_violations(page: Page, axe: str) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe)
    return page.evaluate(RUN_AXE)


def fill_the_workspace(ada: Page, org_path: str) -> dict[str, str]:
    """A project, a doc with a sub-page, a ticket, a decision, a risk: every page has something on it."""
    ada.goto(f"{org_path}/settings")
    ada.get_by_label("Key").fill("APP")
    ada.get_by_label("Name", exact=True).fill("The app")
    ada.get_by_label("Restricted").check()
    ada.get_by_role("button", name="Create project").click()
    expect(ada.locator("#projects")).to_contain_text("APP — The app")
    made = {}
    for section, title, body in (
            ("docs", "Release plan", "| Step | Who |\n|---|---|\n| Tag | Ada |\n\n```python\ndef ship():\n    return 42\n```"),
            ("tickets", "Automate the release", "Per the release plan."),
            ("decisions", "Release on Fridays", "Agreed."),
            ("risks", "The release slips", "Mitigated by the plan.")):
        ada.goto(f"{org_path}/{section}")
        ada.get_by_label("Title").fill(title)
        ada.get_by_label("Text (Markdown)").fill(body)
        ada.get_by_role("button", name="Create").click()
        expect(ada).to_have_url(re.compile(r"/r/[A-Z]+-\d+"))
        made[section] = re.search(r"/r/([A-Z]+-\d+)", ada.url).group(1)
    ada.goto(f"{org_path}/docs")
    ada.get_by_label("Title").fill("Hotfixes")
    ada.get_by_label("Parent page").select_option(label="Release plan")
    ada.get_by_role("button", name="Create").click()
    expect(ada).to_have_url(re.compile(r"/r/DOC-\d+"))
    return made


def test_every_page_type_passes_axe_in_light_and_dark_and_fits_390_px(new_page, pytestconfig):
    axe = axe_source()
    ada, visitor = new_page(), new_page()
    results: dict[str, dict] = {}  # page -> scheme -> violations

    def check(name: str, page: Page, path: str) -> None:
        page.emulate_media(color_scheme="light")
        page.goto(path)
        found = {"light": serious_violations(page, axe)}
        page.emulate_media(color_scheme="dark")  # the stylesheet's media query applies at once
        found["dark"] = serious_violations(page, axe)
        results[name] = found

    check("Setup", ada, "/setup")
    phone = new_page(width=PHONE, height=844)
    phone.goto("/setup")
    widths = {"Setup": phone.evaluate("document.scrollingElement.scrollWidth")}
    results["Setup"]["390 px"] = serious_violations(phone, axe)
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    made = fill_the_workspace(ada, org_path)
    pages = [
        ("Today", f"{org_path}/today"), ("Memory", f"{org_path}/memory"), ("Docs", f"{org_path}/docs"),
        ("A doc", f"{org_path}/r/{made['docs']}"), ("Tickets board", f"{org_path}/tickets?view=board"),
        ("Tickets list", f"{org_path}/tickets"), ("A ticket", f"{org_path}/r/{made['tickets']}"),
        ("Decisions", f"{org_path}/decisions"), ("A decision", f"{org_path}/r/{made['decisions']}"),
        ("Risks", f"{org_path}/risks"), ("A risk", f"{org_path}/r/{made['risks']}"),
        ("Search", f"{org_path}/search?q=release"), ("Chat", f"{org_path}/chat"), ("Inbox", f"{org_path}/inbox"),
        ("Snapshots", f"{org_path}/snapshots"), ("Memory diffs", f"{org_path}/memory-diffs"),
        ("Settings and members", f"{org_path}/settings"), ("Access review", f"{org_path}/settings/access"),
        ("Member tokens", f"{org_path}/settings/tokens"), ("Profile", f"{org_path}/profile"),
        ("Exports", f"{org_path}/exports"), ("Audit", f"{org_path}/settings/audit"),
        ("Egress ledger", f"{org_path}/settings/egress"), ("Server", "/server"), ("Welcome", "/welcome"),
    ]
    for name, path in pages:
        check(name, ada, path)
    check("Sign-in", visitor, "/login")
    visitor.get_by_label("Email").fill("ada@example.com")
    visitor.get_by_label("Password").fill(PASSWORD + " wrong")
    visitor.get_by_role("button", name="Sign in").click()
    expect(visitor.get_by_role("alert")).to_be_visible()
    results["Sign-in, wrong password"] = {"dark": serious_violations(visitor, axe)}
    visitor.emulate_media(color_scheme="light")
    results["Sign-in, wrong password"]["light"] = serious_violations(visitor, axe)

    phone.context.add_cookies(ada.context.cookies())
    for name, path in [*pages, ("Sign-in", "/login")]:
        phone.goto(path)
        widths[name] = phone.evaluate("document.scrollingElement.scrollWidth")
        results.setdefault(name, {})["390 px"] = serious_violations(phone, axe)
        if name == "Today":  # the sidebar is a closed menu there
            expect(phone.locator("#sidebar")).not_to_have_attribute("open", "")
            expect(phone.get_by_text("Menu", exact=True)).to_be_visible()

    lines = [f"axe-core 4.14.1, serious/critical violations per page (light / dark / light at {PHONE} px), "
             f"page scroll width at {PHONE} px:"]
    for name, found in results.items():
        counts = " / ".join(str(len(found[k])) if k in found else "-" for k in ("light", "dark", "390 px"))
        lines.append(f"  {name:<24} {counts:<11} {widths.get(name, '')}")
    say(pytestconfig, "\n".join(lines))
    failures = {f"{name} ({scheme})": found[scheme] for name, found in results.items() for scheme in found
                if found[scheme]}
    assert failures == {}, failures
    too_wide = {name: width for name, width in widths.items() if width > PHONE + 1}
    assert too_wide == {}, too_wide
    assert ada.problems == [] and phone.problems == []
