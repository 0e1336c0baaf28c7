"""User Markdown becomes safe HTML: raw HTML is escaped and only http/https/mailto or relative links survive."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tow_http.pages.markdown import render_markdown, safe_link

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "[x]( javascript:alert(1))",
    "<javascript:alert(1)>",
    "[ref][r]\n\n[r]: javascript:alert(1)",
    "![x](https://tracker.example/pixel.png)",
    '<iframe src="https://evil.example"></iframe>',
    "<svg onload=alert(1)>",
    '<div style="background:url(javascript:alert(1))">x</div>',
]

TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)")
SAFE_TAGS = {"p", "a", "em", "strong", "code", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li",
             "blockquote", "hr", "br"}


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_renders_inert(text):
    html = render_markdown(text)
    assert set(TAG.findall(html)) <= SAFE_TAGS, html
    assert all(safe_link(h) and not h.lower().startswith(("javascript", "data", "vbscript")) for h in hrefs(html))
    assert " on" not in re.sub(r">[^<]*<", "><", html)  # no event-handler attribute inside any tag
    assert "<img" not in html and "<script" not in html and "<iframe" not in html


def test_ordinary_markdown_still_works():
    html = render_markdown("# Title\n\n**bold** *it* `code` [docs](https://example.com) [me](mailto:a@b.example) "
                           "[page](/o/1/r/DOC-1)\n\n- one\n- two")
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<li>one</li>" in html
    assert hrefs(html) == ["https://example.com", "mailto:a@b.example", "/o/1/r/DOC-1"]
    assert 'rel="nofollow noopener noreferrer"' in html


@pytest.mark.parametrize("url,ok", [
    ("https://example.com", True), ("http://x.example/a?b#c", True), ("mailto:a@b.example", True),
    ("/relative/path", True), ("#anchor", True), ("page.html", True),
    ("javascript:alert(1)", False), (" JAVASCRIPT:x", False), ("java\nscript:x", False), ("data:x", False),
    ("file:///etc/passwd", False), ("ftp://x", False), ("", False),
])
def test_link_allow_list(url, ok):
    assert safe_link(url) is ok


@given(st.text(alphabet=st.sampled_from(list("<>\"'=:/()[]!&#;javscriptJAVSCRIPT onerrorhttpdatamailto \n\t`*_")),
               max_size=80))
def test_random_text_never_produces_markup_beyond_markdowns_own(text):
    html = render_markdown(text)
    assert set(TAG.findall(html)) <= SAFE_TAGS, html
    assert all(safe_link(h) for h in hrefs(html)), html
