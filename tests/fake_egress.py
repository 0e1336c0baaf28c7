"""InMemoryEgressLedger: the egress-ledger port in memory, for adapter tests that need no database."""

from __future__ import annotations

from dataclasses import replace

from tow_core.egress import EgressEntry, EgressQuery


class InMemoryEgressLedger:
    def __init__(self) -> None:
        self.rows: list[EgressEntry] = []

    def record(self, entry: EgressEntry) -> int:
        self.rows.append(replace(entry, id=len(self.rows) + 1))
        return len(self.rows)

    def complete(self, entry_id: int, *, request_bytes: int, response_bytes: int, duration_ms: int,
                 outcome: str) -> None:
        self.rows[entry_id - 1] = replace(self.rows[entry_id - 1], request_bytes=request_bytes,
                                          response_bytes=response_bytes, duration_ms=duration_ms, outcome=outcome)

    def entries(self, org_id: int | None, query: EgressQuery, *, cursor: str | None, limit: int):
        matching = [
            e for e in reversed(self.rows)
            if e.organisation_id == org_id
            and query.acting_user_id in (None, e.acting_user_id)
            and query.purpose in (None, e.purpose)
            and (query.record_display_id is None or query.record_display_id in e.record_display_ids)
            and (cursor is None or (e.id or 0) < int(cursor))
        ]
        page = matching[:limit]
        return page, (str(page[-1].id) if len(matching) > limit else None)

    @property
    def outcomes(self) -> list[str]:
        return [e.outcome for e in self.rows]
