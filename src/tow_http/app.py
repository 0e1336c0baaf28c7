"""Litestar app factory: composes the area routers; knows nothing about adapters."""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from tow_core.readiness import SchemaInspector
from tow_http.accounts.api import auth_router, me_router
from tow_http.administration.access_api import access_router, server_admins_router
from tow_http.administration.audit_api import audit_router
from tow_http.administration.invites_api import invites_router
from tow_http.administration.organisations_api import organisations_router
from tow_http.administration.projects_api import projects_router
from tow_http.ai.agent_runs_api import agent_runs_router
from tow_http.ai.api import ai_router
from tow_http.ai.conversations_api import conversations_router
from tow_http.ai.snapshots_api import snapshots_router
from tow_http.bootstrap import use_cases
from tow_http.context import Services, caller_of, session_cookies
from tow_http.errors import EXCEPTION_HANDLERS
from tow_http.exports.api import exports_router
from tow_http.health import health_router
from tow_http.inbox.api import inbox_router
from tow_http.input_guard import GuardedRequest, InputGuardMiddleware
from tow_http.live.api import live_router
from tow_http.mcp.door import MCP_STATE_KEY, McpDoor, mcp_mount
from tow_http.mcp.tools import build_mcp_server
from tow_http.memory.api import memory_diffs_router
from tow_http.methods import allow_every_method
from tow_http.notifications.api import notifications_router
from tow_http.openapi import ClosedStructs, components, document_api
from tow_http.pages import COOKIES_STATE_KEY, pages_router, static_router, template_config
from tow_http.records.api import records_router
from tow_http.records.docs_api import docs_router
from tow_http.records.tickets_api import tickets_router
from tow_http.security import BrowserSecurityMiddleware
from tow_http.tokens.api import tokens_router
from tow_http.uploads.api import uploads_router

API_DESCRIPTION = """TOW's JSON API.

Errors always have the shape `{"error": {"code": "...", "message": "...", "field": "..."}}`
(`ErrorEnvelope`; `field` only when one input value was wrong). Statuses: 400 the request does not match
this document, 422 well-formed but refused by a rule, 401 not signed in, 403 signed in but not allowed
(or a cross-site request), 404 not found *or not visible to you*, 405 method not allowed (with `Allow`),
409 conflict, 413 too large, 429 throttled, 503 a dependency is unavailable (with `Retry-After`). Each
operation lists the statuses it can answer; `x-tow-access` marks those only organisation owners/admins,
project managers or server admins may use. Signed-in operations need the `session` cookie or a personal access
token (`Authorization: Bearer tow_pat_...`, README "API tokens"). Bodies are
read with JSON's types as declared (`0` is not `false`); text may not contain U+0000 (400).
"""


def _constant(value: object):
    def provide() -> object:
        return value

    return provide


def create_app(
    *, services: Services, schema_inspector: SchemaInspector, extra_routers: Sequence[Router] = ()
) -> Litestar:
    """Compose the area routers; ``extra_routers`` lets tests mount probes beside them."""
    settings = services.settings
    cookies = session_cookies(services)
    cases = use_cases(services)
    mcp = McpDoor(build_mcp_server(cases["records"], cases["memory"]), cases["tokens"], settings.mcp,
                  settings.runtime.public_app_url,
                  cases["single_sign_on"] if settings.mcp.oidc_access_tokens else None)
    app = Litestar(
        route_handlers=[
            health_router, auth_router, me_router, invites_router, organisations_router, projects_router,
            access_router, server_admins_router, records_router, audit_router, docs_router, tickets_router,
            memory_diffs_router, uploads_router, ai_router, agent_runs_router, conversations_router, exports_router,
            tokens_router, snapshots_router, inbox_router, notifications_router, live_router, mcp_mount(mcp),
            pages_router,
            static_router,
            *extra_routers,
        ],
        dependencies={
            "schema_inspector": Provide(lambda: schema_inspector, sync_to_thread=False),
            "caller": Provide(caller_of, sync_to_thread=False),
            "session_cookies": Provide(_constant(cookies), sync_to_thread=False),
            "settings": Provide(_constant(settings), sync_to_thread=False),
            # Each handler asks for the one use case object it calls (tow_http.bootstrap); each opens its own unit
            # of work on the handler's thread.
            **{name: Provide(_constant(case), sync_to_thread=False) for name, case in cases.items()},
        },
        lifespan=[mcp.lifespan],  # the MCP SDK's session manager runs while the app does
        # The live hub: open while the app runs; closing it ends the streams and its listening connection (`tow serve`
        # closes it earlier, as shutdown begins: tow_http/serving.py).
        on_startup=[services.live.open] if services.live is not None else [],
        on_shutdown=[services.live.close] if services.live is not None else [],
        middleware=[DefineMiddleware(BrowserSecurityMiddleware, session_cookies=cookies), InputGuardMiddleware],
        request_class=GuardedRequest,  # deep JSON, NUL and huge integers refused before decoding reaches a handler
        plugins=[ClosedStructs()],
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=template_config(),
        state=State({COOKIES_STATE_KEY: cookies, MCP_STATE_KEY: mcp}),
        request_max_body_size=settings.runtime.max_request_body_bytes,
        openapi_config=OpenAPIConfig(
            title=settings.runtime.app_name,
            version="0.1.0",
            description=API_DESCRIPTION,
            path="/api/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
            components=components(settings.security.session_cookie_name),
        ),
        debug=False,
        # Litestar's default logging config starts a QueueListener thread per app instance that is only
        # stopped at interpreter exit; TOW logs through the standard `logging` tree the CLI configures
        # (tow_http.errors logs unhandled errors itself), so Litestar must not reconfigure logging.
        logging_config=None,
    )
    # error statuses, sign-in and access of every operation (tow_http/openapi.py)
    document_api(app, use_case_names=frozenset(cases))
    allow_every_method(app)
    return app
