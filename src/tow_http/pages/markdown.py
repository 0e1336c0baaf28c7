"""User text to safe HTML: Markdown with raw HTML escaped and only http/https/mailto (or relative) links.

markdown-it-py in its CommonMark preset with ``html`` off renders any HTML a user writes as text; its
``validateLink`` hook is replaced so that ``javascript:``, ``data:``, ``vbscript:`` and every other scheme
is refused (the link text stays, as plain text). Images are rendered as links, never loaded: the
Content-Security-Policy allows images from this server only, and a remote image would leak who read
the page (OWASP XSS Prevention Cheat Sheet, rule 5 "URL-escape and allow-list schemes").
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from markdown_it import MarkdownIt

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


def _external_links(html: str) -> str:
    # Links leave with no referrer and cannot reach back into this tab (window.opener).
    return html.replace("<a href=", '<a rel="nofollow noopener noreferrer" href=')


def render_markdown(text: str) -> str:
    """HTML for user-written Markdown; safe to insert into a page as is."""
    return _external_links(_MD.render(text or ""))
