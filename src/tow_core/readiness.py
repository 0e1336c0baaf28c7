"""Readiness: TOW serves only on a reachable database at the latest schema migration (SPEC §9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tow_core.errors import SchemaOutOfDate


@dataclass(frozen=True, slots=True)
class SchemaState:
    current_revision: str | None
    latest_revision: str

    @property
    def up_to_date(self) -> bool:
        return self.current_revision == self.latest_revision


class SchemaInspector(Protocol):
    def schema_state(self) -> SchemaState:
        """Return the applied and latest revisions; raise DependencyUnavailable if unreachable."""
        ...


def require_current_schema(inspector: SchemaInspector) -> SchemaState:
    """Raise SchemaOutOfDate unless every migration is applied, naming the command that fixes it."""
    state = inspector.schema_state()
    if not state.up_to_date:
        raise SchemaOutOfDate(
            f"database schema is at {state.current_revision or 'nothing'}, latest is "
            f"{state.latest_revision}: run `tow db upgrade`"
        )
    return state
