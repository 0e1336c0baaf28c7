"""PgEgressLedger: the data-egress ledger in PostgreSQL (SPEC §6).

Each entry is written in its own short transaction on its own pooled connection — never in the
caller's — so a failed provider call still leaves its row and a rolled-back request cannot erase the
fact that data left the deployment.
"""

from __future__ import annotations

import sqlalchemy as sa

from tow_adapters.postgres.engine import transaction
from tow_core.ai import EgressPurpose
from tow_core.egress import EgressEntry, EgressQuery
from tow_core.errors import InvalidInput

_COLUMNS = (
    "provider, base_url, model, purpose, acting_user_id, organisation_id, record_display_ids, "
    "request_bytes, response_bytes, duration_ms, outcome"
)


class PgEgressLedger:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def record(self, entry: EgressEntry) -> int:
        return self._write(
            f"INSERT INTO egress_ledger ({_COLUMNS}) VALUES (:provider, :base_url, :model, :purpose, :user, :org, "
            ":records, :request_bytes, :response_bytes, :duration_ms, :outcome) RETURNING id",
            dict(provider=entry.provider, base_url=entry.base_url, model=entry.model, purpose=entry.purpose.value,
                 user=entry.acting_user_id, org=entry.organisation_id, records=list(entry.record_display_ids),
                 request_bytes=entry.request_bytes, response_bytes=entry.response_bytes,
                 duration_ms=entry.duration_ms, outcome=entry.outcome),
        )

    def complete(self, entry_id: int, *, request_bytes: int, response_bytes: int, duration_ms: int,
                 outcome: str) -> None:
        self._write(
            "UPDATE egress_ledger SET request_bytes = :request_bytes, response_bytes = :response_bytes, "
            "duration_ms = :duration_ms, outcome = :outcome WHERE id = :id RETURNING id",
            dict(id=entry_id, request_bytes=request_bytes, response_bytes=response_bytes, duration_ms=duration_ms,
                 outcome=outcome),
        )

    def _write(self, sql: str, params: dict[str, object]) -> int:
        """One statement in its own transaction on its own pooled connection, never the caller's; a database
        that is down or busy is DependencyUnavailable / DatabaseBusy (``engine.transaction``)."""
        with transaction(self._engine) as connection:
            return connection.execute(sa.text(sql), params).scalar_one()

    def entries(
        self, org_id: int | None, query: EgressQuery, *, cursor: str | None, limit: int
    ) -> tuple[list[EgressEntry], str | None]:
        conditions = ["organisation_id IS NULL" if org_id is None else "organisation_id = :org"]
        params: dict[str, object] = {"org": org_id, "limit": limit + 1}
        if query.acting_user_id is not None:
            conditions.append("acting_user_id = :user")
            params["user"] = query.acting_user_id
        if query.purpose is not None:
            conditions.append("purpose = :purpose")
            params["purpose"] = query.purpose.value
        if query.record_display_id is not None:
            conditions.append("record_display_ids @> ARRAY[CAST(:record AS text)]")
            params["record"] = query.record_display_id.upper()
        if cursor is not None:
            if not cursor.isdecimal() or len(cursor) > 18:
                raise InvalidInput("cursor is not one this server issued", field="cursor")
            conditions.append("id < :after")
            params["after"] = int(cursor)
        with transaction(self._engine) as connection:
            rows = connection.execute(
                sa.text(
                    f"SELECT {_COLUMNS}, id, created_at FROM egress_ledger WHERE {' AND '.join(conditions)} "
                    "ORDER BY id DESC LIMIT :limit"
                ),
                params,
            ).all()
        entries = [
            EgressEntry(r[0], r[1], r[2], EgressPurpose(r[3]), r[4], r[5], tuple(r[6]), r[7], r[8], r[9], r[10],
                        r[11], r[12])
            for r in rows[:limit]
        ]
        return entries, (str(entries[-1].id) if len(rows) > limit else None)
