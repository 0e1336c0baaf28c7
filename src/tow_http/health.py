"""Liveness and readiness (SPEC §10)."""

from __future__ import annotations

from litestar import Request, Router, get
from litestar.di import NamedDependency
from litestar.params import SkipValidation

from tow_core.readiness import SchemaInspector, require_current_schema


@get("/health", summary="Liveness", description="200 while the process serves requests. Touches nothing else.")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    summary="Readiness",
    description=(
        "200 when the database is reachable and at the latest migration. Otherwise 503 with "
        "`Retry-After` and an error naming the cause (`dependency_unavailable` or `schema_out_of_date`)."
    ),
    sync_to_thread=True,
)
def ready(schema_inspector: NamedDependency[SkipValidation[SchemaInspector]]) -> dict[str, str]:
    state = require_current_schema(schema_inspector)
    return {"status": "ready", "schema_revision": state.latest_revision}


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_document(request: Request) -> dict:
    """The OpenAPI document at the address SPEC §10 names; the browsable page is /api/docs."""
    return request.app.openapi_schema.to_schema()


health_router = Router(path="/api", route_handlers=[health, ready, openapi_document], tags=["health"])
