"""The browser UI: server-rendered pages (Jinja2 + HTMX) in the same process as the JSON API.

Pages call the same use case objects (``tow_core.use_cases``) as the API routes, with the same session cookie;
they never call the JSON API over HTTP.
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide
from litestar.static_files import create_static_files_router

from tow_http.accounts.pages import AUTH_PAGES
from tow_http.administration.pages import ADMIN_PAGES
from tow_http.ai.chat_pages import CHAT_PAGES
from tow_http.ai.pages import EGRESS_PAGES
from tow_http.ai.snapshot_pages import SNAPSHOT_PAGES
from tow_http.exports.import_pages import IMPORT_PAGES
from tow_http.exports.pages import EXPORT_PAGES
from tow_http.inbox.pages import INBOX_PAGES
from tow_http.memory.pages import MEMORY_PAGES
from tow_http.notifications.pages import NOTIFICATION_PAGES
from tow_http.pages.web import (
    COOKIES_STATE_KEY,
    PAGE_EXCEPTION_HANDLERS,
    STATIC,
    provide_form,
    template_config,
)
from tow_http.records.pages import RECORD_PAGES
from tow_http.records.revision_pages import REVISION_PAGES
from tow_http.tokens.pages import TOKEN_PAGES
from tow_http.uploads.image_pages import IMAGE_PAGES
from tow_http.uploads.pages import UPLOAD_PAGES

pages_router = Router(
    path="/",
    route_handlers=[*AUTH_PAGES, *MEMORY_PAGES, *ADMIN_PAGES, *UPLOAD_PAGES, *EXPORT_PAGES, *IMAGE_PAGES,
                    *EGRESS_PAGES, *IMPORT_PAGES, *SNAPSHOT_PAGES, *RECORD_PAGES, *CHAT_PAGES,
                    *INBOX_PAGES, *REVISION_PAGES, *TOKEN_PAGES, *NOTIFICATION_PAGES],
    dependencies={"form": Provide(provide_form)},
    exception_handlers=PAGE_EXCEPTION_HANDLERS,
    include_in_schema=False,
)

# HTMX is vendored (src/tow_http/static/htmx.min.js, from the npm package htmx.org 2.0.11): no CDN.
static_router = create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False,
                                           send_as_attachment=False)

__all__ = ["COOKIES_STATE_KEY", "pages_router", "static_router", "template_config"]
