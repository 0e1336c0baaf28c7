"""``Allow`` names every method of the resource (RFC 9110 §10.2.1), on OPTIONS as on 405.

Litestar 2.25 creates a path's OPTIONS handler when the path's first handler is registered and keeps it when
more handlers join, so its ``Allow`` lists only that first handler's methods (``GET /api/organisations/1``
answered OPTIONS with ``Allow: GET, OPTIONS`` though PATCH is there too). Its 405s are right. This corrects
the OPTIONS answers on the way out, from the routes as finally composed.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope


def allow_every_method(app: Litestar) -> None:
    allow: dict[int, bytes] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute) and "OPTIONS" in route.route_handler_map:
            handler = route.route_handler_map["OPTIONS"][0]
            allow[id(handler)] = ", ".join(sorted(route.methods)).encode()

    async def correct_allow(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        methods = allow.get(id(scope.get("route_handler")))
        if methods is not None:
            headers = [(name, value) for name, value in message.get("headers", []) if name.lower() != b"allow"]
            message["headers"] = [*headers, (b"allow", methods)]

    app.before_send.append(correct_allow)
