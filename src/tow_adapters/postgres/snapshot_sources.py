"""PgSnapshotSources: a generated snapshot's pinned sources (migration 0019_snapshot_sources), on the caller's
connection. ``pinned`` joins each pin to its record's current version (NULL when the record is gone); it reads
no record content, and the core decides which pins a viewer is shown (``tow_core.snapshots.provenance``)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore
from tow_core.snapshots import GENERATED_BY_PREFIX, SNAPSHOT_RUN, AbandonedGeneration, PinnedSource


class PgSnapshotSources(SqlStore):
    def pin(self, org_id: int, snapshot_id: int, sources: Sequence[tuple[int, int]]) -> None:
        self._conn.execute(sa.text("DELETE FROM snapshot_sources WHERE snapshot_record_id = :s "
                                   "AND organisation_id = :o"), {"s": snapshot_id, "o": org_id})
        for record_id, version in dict(sources).items():
            self._row("INSERT INTO snapshot_sources (snapshot_record_id, organisation_id, source_record_id, "
                      "source_version) SELECT id, organisation_id, :source, :version FROM records "
                      "WHERE id = :snapshot AND organisation_id = :org RETURNING 1",
                      snapshot=snapshot_id, org=org_id, source=record_id, version=version)

    def pinned(self, org_id: int, snapshot_id: int) -> list[PinnedSource]:
        rows = self._rows(
            "SELECT p.source_record_id, p.source_version, r.version FROM snapshot_sources p "
            "LEFT JOIN records r ON r.id = p.source_record_id AND r.organisation_id = p.organisation_id "
            "WHERE p.snapshot_record_id = :snapshot AND p.organisation_id = :org ORDER BY p.source_record_id",
            snapshot=snapshot_id, org=org_id)
        return [PinnedSource(source, pinned, current) for source, pinned, current in rows]

    def abandoned(self, *, limit: int) -> list[AbandonedGeneration]:
        # Driven by the runs (a small table, purged after ai.agent_run_retention_days), each joined to its
        # snapshot by primary key: no scan of the records.
        rows = self._rows(
            "SELECT r.organisation_id, r.id, a.id, a.status, a.error FROM agent_runs a "
            "JOIN records r ON r.id = CAST(a.input ->> 'snapshot_id' AS bigint) "
            "AND r.organisation_id = a.organisation_id "
            "WHERE a.kind = :kind AND a.status IN ('failed', 'cancelled') AND jsonb_typeof(a.input -> 'snapshot_id') "
            "= 'number' AND r.type = 'snapshot' AND r.status = 'generating' "
            "AND r.fields ->> 'generated_by' = :prefix || a.id ORDER BY a.id LIMIT :limit",
            kind=SNAPSHOT_RUN, prefix=GENERATED_BY_PREFIX, limit=limit)
        return [AbandonedGeneration(org, snapshot, run, error or f"the run was {status}")
                for org, snapshot, run, status, error in rows]
