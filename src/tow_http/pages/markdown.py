"""User text to safe HTML: Markdown with raw HTML escaped and only http/https/mailto (or relative) links.

markdown-it-py in its CommonMark preset with ``html`` off renders any HTML a user writes as text; its
``validateLink`` hook is replaced so that ``javascript:``, ``data:``, ``vbscript:`` and every other scheme
is refused (the link text stays, as plain text). No image is ever loaded from another site: the
Content-Security-Policy allows images from this server only, and a remote image would leak who read
the page (OWASP XSS Prevention Cheat Sheet, rule 5 "URL-escape and allow-list schemes"). In a record an
image of this server's uploads (``![shot](/api/uploads/7/content)``, what pasting an image in the editor
writes) is shown, checked against the reader's access by the download route; any other image becomes a
plain link labelled "image: <alt>".

GitHub-flavoured extras (issue 18): tables (alignment as ``align-*`` classes, never a ``style`` attribute,
so the CSP needs no inline styles), task lists as disabled checkboxes (mdit-py-plugins), ``~~strike~~``,
and autolinks as GitHub makes them — ``https://…``, ``www.…`` and e-mail addresses, never a bare
``name.tld`` such as ``README.md`` (linkify-it-py, filtered). Fenced code with a language Pygments knows
is highlighted on the server with ``hl-`` classes (static/pygments.css); any other stays plain escaped code.

``render_chat_markdown`` is for text a model wrote, which a prompt injection in a record or a web page may
have steered (issue 13): besides all of the above, an image — inline or reference-style, also one nested
in a link — becomes a plain link labelled "image: <alt>", so nothing is fetched when the answer is shown
and the reader sees what the model tried to show; and every link to another site is followed by its host
in the text, so ``[DOC-1](https://evil.example/?q=secret)`` cannot pass for a citation of DOC-1.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from linkify_it import LinkifyIt
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from mdit_py_plugins.tasklists import tasklists_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from tow_core.notifications import MENTION

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
# Browsers ignore tabs, newlines and leading control characters inside a scheme ("java\tscript:").
_IGNORED_IN_URL = re.compile(r"[\x00-\x20\x7f]")


def safe_link(url: str) -> bool:
    """True for http, https and mailto URLs and for links with no scheme (relative, #anchors)."""
    cleaned = _IGNORED_IN_URL.sub("", url)
    if not cleaned:
        return False
    scheme = urlsplit(cleaned).scheme.lower()
    if scheme:
        return scheme in ALLOWED_SCHEMES
    return ":" not in cleaned.split("/", 1)[0]  # "javascript&colon;..." decoded later never gets here


EXTERNAL_LINK_REL = "noopener noreferrer nofollow"

# --- GitHub-flavoured extras ------------------------------------------------------------------------------

HIGHLIGHT_CLASS_PREFIX = "hl-"  # static/pygments.css is generated with the same prefix
MAX_HIGHLIGHTED_CHARS = 100_000  # a longer block is shown plain: highlighting is regex work per character
_LANGUAGE_NAME = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")
_FORMATTER = HtmlFormatter(nowrap=True, classprefix=HIGHLIGHT_CLASS_PREFIX)


def _highlight(code: str, language: str, _attrs: str) -> str:
    """A fenced block in a language Pygments knows, as escaped HTML with class-only spans; "" lets
    markdown-it render it as plain escaped code."""
    if not _LANGUAGE_NAME.fullmatch(language or "") or len(code) > MAX_HIGHLIGHTED_CHARS:
        return ""
    try:
        lexer = get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return ""
    spans = highlight(code, lexer, _FORMATTER)
    return f'<pre class="highlight"><code class="language-{escapeHtml(language)}">{spans}</code></pre>\n'


class _GithubAutolinks:
    """linkify-it-py, keeping only what GitHub autolinks: an address with http(s)/mailto, one starting
    with ``www.``, or an e-mail address (a bare ``README.md`` or ``example.org`` stays text)."""

    def __init__(self) -> None:
        self._linkify = LinkifyIt()

    def pretest(self, text: str) -> bool:
        return self._linkify.pretest(text)

    def test(self, text: str) -> bool:
        return bool(self.match(text))

    def match(self, text: str) -> list:
        return [m for m in self._linkify.match(text) or [] if _github_autolink(m.schema, m.raw, m.url)]

    def match_at_start(self, text: str):  # noqa: ANN201 - linkify-it's Match, or None
        found = self._linkify.match_at_start(text)
        return found if found is not None and _github_autolink(found.schema, found.raw, found.url) else None


def _github_autolink(schema: str, raw: str, url: str) -> bool:
    if schema.lower() in ("http:", "https:", "mailto:"):
        return True
    return schema == "" and (raw.lower().startswith("www.") or (url.startswith("mailto:") and "@" in raw))


_ALIGN = re.compile(r"text-align:(left|right|center)")


def _align_by_class(state: StateCore) -> None:
    """markdown-it writes a table column's alignment as ``style="text-align:…"``; a class keeps the CSP's
    style-src free of inline styles."""
    for token in state.tokens:
        style = token.attrGet("style") if token.type in ("th_open", "td_open") else None
        if style is not None:
            token.attrs.pop("style", None)
            aligned = _ALIGN.fullmatch(str(style))
            if aligned:
                token.attrSet("class", f"align-{aligned.group(1)}")


def _github_flavoured(md: MarkdownIt) -> MarkdownIt:
    md.enable(["table", "strikethrough", "linkify"])
    md.linkify = _GithubAutolinks()
    md.options["highlight"] = _highlight
    md.use(tasklists_plugin, enabled=False, label=True)  # checkboxes show state; ticking is editing the text
    md.core.ruler.push("align_by_class", _align_by_class)
    return md


def _base() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "typographer": False})
    md.validateLink = safe_link  # for images too: ![x](javascript:...) stays text
    return _github_flavoured(md)


# --- records: this server's uploaded images are shown, nothing else is loaded --------------------------

OWN_UPLOAD_IMAGE = re.compile(r"/api/uploads/[1-9][0-9]{0,17}/content")


def _record_image(self, tokens: list[Token], idx: int, options, env) -> str:  # noqa: ANN001
    image = tokens[idx]
    src = str(image.attrGet("src") or "")
    if not OWN_UPLOAD_IMAGE.fullmatch(src):
        return _image_as_link(self, tokens, idx, options, env, rel=False)
    alt = escapeHtml(self.renderInlineAsText(image.children or [], options, env))
    return f'<img src="{escapeHtml(src)}" alt="{alt}" loading="lazy">'


# A mention as the editor writes it (``tow_core.notifications.MENTION``): shown as a chip with the name written.
def _mention_chips(state: StateCore) -> None:
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        for token in block.children:
            if token.type != "text" or "](user:" not in token.content:
                children.append(token)
                continue
            at = 0
            for found in MENTION.finditer(token.content):
                children.append(_text(token.content[at:found.start()]))
                chip = Token("mention", "", 0)
                chip.content, chip.meta = found.group(1), {"user": found.group(2)}
                children.append(chip)
                at = found.end()
            children.append(_text(token.content[at:]))
        block.children = [c for c in children if c.type != "text" or c.content]


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _render_mention(self, tokens: list[Token], idx: int, options, env) -> str:  # noqa: ANN001
    chip = tokens[idx]
    return f'<span class="mention" data-user-id="{escapeHtml(chip.meta["user"])}">@{escapeHtml(chip.content)}</span>'


def _markdown() -> MarkdownIt:
    md = _base()
    md.add_render_rule("image", _record_image)
    md.core.ruler.push("mention_chips", _mention_chips)
    md.add_render_rule("mention", _render_mention)
    return md


def external_host(url: str) -> str | None:
    """The host a link leads to when it leaves this server (absolute or protocol-relative), else None."""
    parts = urlsplit(url)
    return parts.hostname if parts.netloc else None


def _link_rel(self, tokens: list[Token], idx: int, options, env) -> str:  # noqa: ANN001 - markdown-it's signature
    tokens[idx].attrSet("rel", EXTERNAL_LINK_REL)
    return self.renderToken(tokens, idx, options, env)


def _image_as_link(self, tokens: list[Token], idx: int, options, env, *, rel: bool = True) -> str:  # noqa: ANN001
    image = tokens[idx]
    alt = self.renderInlineAsText(image.children or [], options, env)
    label = escapeHtml(f"image: {alt}" if alt else "image")
    opened = sum({"link_open": 1, "link_close": -1}.get(t.type, 0) for t in tokens[:idx])
    if opened > 0:  # inside a link already: an anchor in an anchor is not HTML, the label is enough
        return label
    src = image.attrGet("src") or ""
    host = external_host(src)
    suffix = f" ({escapeHtml(host)})" if host else ""
    rel_attr = f' rel="{EXTERNAL_LINK_REL}"' if rel else ""  # records add their rel to every link at the end
    return f'<a href="{escapeHtml(src)}"{rel_attr}>{label}</a>{suffix}'


def _name_external_hosts(state: StateCore) -> None:
    """After each link to another site, its host as text, unless the link's text is its address already."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        href, text = None, []
        for token in block.children:
            children.append(token)
            if token.type == "link_open":
                href, text = str(token.attrGet("href") or ""), []
            elif token.type == "link_close" and href is not None:
                host = external_host(href)
                shown = "".join(text).strip()
                autolinked = token.markup in ("autolink", "linkify")  # its text is its address
                if host and not autolinked and shown not in (href, href.removeprefix("mailto:")):
                    suffix = Token("text", "", 0)
                    suffix.content = f" ({host})"
                    children.append(suffix)
                href = None
            elif href is not None and token.type in ("text", "code_inline"):
                text.append(token.content)
        block.children = children


def _chat_markdown() -> MarkdownIt:
    md = _base()
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("link_open", _link_rel)
    md.core.ruler.push("name_external_hosts", _name_external_hosts)
    return md


_MD = _markdown()
_CHAT_MD = _chat_markdown()


def _external_links(html: str) -> str:
    # Links leave with no referrer and cannot reach back into this tab (window.opener).
    return html.replace("<a href=", '<a rel="nofollow noopener noreferrer" href=')


def render_markdown(text: str) -> str:
    """HTML for user-written Markdown; safe to insert into a page as is."""
    return _external_links(_MD.render(text or ""))


def render_chat_markdown(text: str) -> str:
    """HTML for Markdown a model wrote (a chat answer): as ``render_markdown``, and no image is ever loaded
    and every link to another site shows its host (see the module docstring)."""
    return _CHAT_MD.render(text or "")
