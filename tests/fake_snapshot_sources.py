"""InMemorySnapshotSources: the SnapshotSources port over a dict, reading current versions from the fake
record store (a pin outlives its source, like the table, which has no foreign key to it)."""

from __future__ import annotations

from collections.abc import Sequence

from tests.fake_agent_runs import InMemoryAgentRuns
from tests.fake_records import InMemoryRecordStore
from tow_core.agent_runs import AgentRunStatus
from tow_core.snapshots import SNAPSHOT_RUN, AbandonedGeneration, PinnedSource, generated_by


class InMemorySnapshotSources:
    def __init__(self, records: InMemoryRecordStore, runs: InMemoryAgentRuns | None = None) -> None:
        self._records = records
        self._runs = runs or InMemoryAgentRuns()
        self.pins: dict[tuple[int, int], dict[int, int]] = {}  # (org, snapshot) -> source id -> version

    def pin(self, org_id: int, snapshot_id: int, sources: Sequence[tuple[int, int]]) -> None:
        snapshot = self._records.rows.get(snapshot_id)
        if snapshot is None or snapshot.organisation_id != org_id:
            self.pins.pop((org_id, snapshot_id), None)
            return
        self.pins[(org_id, snapshot_id)] = dict(sources)

    def pinned(self, org_id: int, snapshot_id: int) -> list[PinnedSource]:
        pins = self.pins.get((org_id, snapshot_id), {}) if snapshot_id in self._records.rows else {}
        result = []
        for source, version in sorted(pins.items()):
            record = self._records.rows.get(source)
            current = record.version if record is not None and record.organisation_id == org_id else None
            result.append(PinnedSource(source, version, current))
        return result

    def abandoned(self, *, limit: int) -> list[AbandonedGeneration]:
        found = []
        for run_id in sorted(self._runs._runs):
            run = self._runs.get(run_id)
            if run.kind != SNAPSHOT_RUN or run.status not in (AgentRunStatus.FAILED, AgentRunStatus.CANCELLED):
                continue
            snapshot = self._records.rows.get(run.input.get("snapshot_id"))
            if (snapshot is not None and snapshot.organisation_id == run.organisation_id
                    and snapshot.status == "generating" and snapshot.fields.get("generated_by") == generated_by(run.id)):
                found.append(AbandonedGeneration(run.organisation_id, snapshot.id, run.id,
                                                 run.error or f"the run was {run.status.value}"))
        return found[:limit]
