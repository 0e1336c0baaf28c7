"""Generating snapshots (SPEC §6 workflow 3, issue 14 item 2): a request creates the snapshot and queues the run
that writes it; a worker gathers, asks the model once and saves the checked draft (rules in ``tow_core.snapshots``).

Rules:
- Any member may ask, for all projects or a project they read; without AI configured the request is refused
  (AiNotConfigured) and nothing is saved.
- The snapshot is created with the request, in ``generating`` and **private to the requester** (nobody else
  sees a draft in progress, and the page can show the run's progress at once), with ``generated_by`` naming
  the run. When the run ends it becomes ``pending_review`` in the scope its sources allow (``snapshot_scope``),
  through the same update rules as a person's edit; when the run fails (or is cancelled) it becomes ``failed``
  with the reason as its text, and stays private.
- The run acts as the requester with their access loaded fresh for the gathering and again for the save: a
  grant revoked meanwhile drops the citations of what it covered, and a requester who left the organisation
  (or lost the project) gets no draft (the run fails).
- The sources are the kept citations, pinned to the version that was sent; a snapshot page and the API show
  which of them changed since (``Provenance``), naming only those the viewer can read now.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tow_core import knowledge
from tow_core.access import Scope
from tow_core.agent_runs import (
    AgentRun,
    AgentRunFailed,
    AgentRunLeaseLost,
    AgentRunResult,
    Heartbeat,
    TokenUsage,
    shown_to,
)
from tow_core.agent_runs import new_run as queued_run
from tow_core.ai import AI_NOT_CONFIGURED_MESSAGE, EgressContext, EgressPurpose, ReasoningModel
from tow_core.errors import AiNotConfigured, InvalidInput, NotFound, TowError
from tow_core.knowledge import MAX_TITLE, RecordChange, Workspace, clean_text, scope_label
from tow_core.records import DisplayId, Record, RecordType, validated_fields
from tow_core.snapshots import (
    SNAPSHOT_RUN,
    Draft,
    Provenance,
    check_draft,
    gather,
    generated_by,
    generating_run_id,
    generation_request,
    provenance,
    requested_scope,
    sent,
    type_label,
)
from tow_core.unit_of_work import Acting, Credential, Stores, Transactions

MAX_FAILURE_CHARS = 2_000


@dataclass(frozen=True)
class GenerationStarted:
    snapshot: Record
    run: AgentRun


def snapshot_provenance(acting: Acting, ws: Workspace, record: Record) -> Provenance:
    """A snapshot's pinned sources and generating run, as ``ws``'s principal may see them."""
    run_id = generating_run_id(record)
    run = acting.stores.agent_runs.get(run_id) if run_id is not None else None
    shown = shown_to(acting.principal, run) if run is not None else None
    return provenance(ws, acting.stores.snapshot_sources.pinned(ws.org_id, record.id), shown,
                      run_content_visible=shown is not None and shown.owner_id == acting.principal.user_id)


@dataclass(frozen=True)
class SnapshotUseCases:
    transactions: Transactions
    ai_configured: bool

    def generate(self, credential: Credential, org_id: int, *, snapshot_type: str, title: str | None,
                 project_key: str | None) -> GenerationStarted:
        """Create the snapshot (generating, private to the caller) and queue its run, in one unit of work."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            fields = validated_fields(RecordType.SNAPSHOT, {"snapshot_type": snapshot_type})
            project_id = knowledge.project_filter(ws, project_key.strip().upper() if project_key else None)
            title = clean_text(title or "", "title", max_length=MAX_TITLE).strip() or \
                f"{type_label(snapshot_type)} {acting.now.date().isoformat()}"
            if not self.ai_configured:
                raise AiNotConfigured(AI_NOT_CONFIGURED_MESSAGE)
            private = Scope.private(org_id, acting.principal.user_id)
            snapshot = knowledge.create_record(ws, record_type=RecordType.SNAPSHOT, scope=private, project=None,
                                               title=title, fields=fields, generating=True)
            run = acting.stores.agent_runs.create(
                queued_run(SNAPSHOT_RUN, owner_id=acting.principal.user_id, organisation_id=org_id,
                           project_id=project_id, input={"snapshot_id": snapshot.id,
                                                         "display_id": str(snapshot.display_id),
                                                         "snapshot_type": snapshot_type}),
                now=acting.now)
            named = replace(snapshot, fields={**snapshot.fields, "generated_by": generated_by(run.id)})
            return GenerationStarted(ws.records.save(named, expected_version=snapshot.version), run)

    def provenance(self, credential: Credential, org_id: int, display_id: DisplayId
                   ) -> tuple[Record, Provenance]:
        """A snapshot the caller reads, with its sources (changed since?) and its generating run."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            record = knowledge.get_record(ws, display_id)
            if record.type is not RecordType.SNAPSHOT:
                raise NotFound(f"{display_id} is not a snapshot")
            return record, snapshot_provenance(acting, ws, record)


@dataclass(frozen=True)
class SnapshotRuns:
    """The worker's handler of ``snapshot_generation`` runs."""

    transactions: Transactions
    model: ReasoningModel

    def __call__(self, run: AgentRun, heartbeat: Heartbeat) -> AgentRunResult:
        try:
            snapshot_id = int(run.input["snapshot_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentRunFailed("a snapshot run's input names its snapshot_id", error_code="invalid_input") from exc
        try:
            return self._generate(run, snapshot_id, heartbeat)
        except AgentRunLeaseLost:
            raise  # another worker has the run (and the snapshot) now
        except Exception as exc:
            self._failed(run, snapshot_id, exc)
            raise

    def _generate(self, run: AgentRun, snapshot_id: int, heartbeat: Heartbeat) -> AgentRunResult:
        with self.transactions.on_behalf_of(run.owner_id, run.organisation_id) as owner:
            ws = owner.workspace
            snapshot = self._generating(ws, run, snapshot_id)
            within = requested_scope(ws, run.project_id)
            records = gather(ws, run.project_id)
        heartbeat()
        request = generation_request(snapshot.fields["snapshot_type"], snapshot.title, records)
        result = self.model.respond(request, EgressContext(EgressPurpose.SNAPSHOT, run.owner_id, run.organisation_id))
        if not result.output_text.strip():
            raise AgentRunFailed("the model returned an empty draft", error_code="empty_draft")
        draft = Draft(result.output_text, sent(records), result.usage, result.model)
        heartbeat()
        # Citations checked as the requester reads now.
        with self.transactions.on_behalf_of(run.owner_id, run.organisation_id) as owner:
            ws, stores = owner.workspace, owner.stores
            current = self._generating(ws, run, snapshot_id)
            checked = check_draft(ws, draft, within)
            saved = knowledge.update_record(
                ws, current.display_id, expected_version=current.version,
                change=RecordChange(body=checked.text, status="pending_review",
                                    scope=(checked.scope, knowledge.project_access_of(ws, checked.scope))))
            stores.snapshot_sources.pin(ws.org_id, saved.id, [(s.record_id, s.version) for s in checked.sources])
        return AgentRunResult({"snapshot": str(saved.display_id), "scope": scope_label(saved.scope),
                               "records_sent": len(records),
                               "sources": [{"display_id": s.display_id, "version": s.version}
                                           for s in checked.sources],
                               "dropped_citations": list(checked.dropped)},
                              TokenUsage(draft.usage.input_tokens, draft.usage.output_tokens))

    @staticmethod
    def _generating(ws: Workspace, run: AgentRun, snapshot_id: int) -> Record:
        record = ws.records.readable(ws.principal.user_id, ws.org_id, snapshot_id)
        if record is None or record.type is not RecordType.SNAPSHOT or generating_run_id(record) != run.id:
            raise NotFound("the snapshot being generated is gone")
        if record.status != "generating":
            raise InvalidInput(f"{record.display_id} is no longer being generated ({record.status})",
                               field="status")
        return record

    def _failed(self, run: AgentRun, snapshot_id: int, exc: Exception) -> None:
        reason = exc.message if isinstance(exc, TowError) else f"{type(exc).__name__}: {exc}"
        with self.transactions.unattended() as work:
            _mark_failed(work.stores, run.organisation_id, snapshot_id, run.id, reason)


def fail_abandoned_generations(transactions: Transactions, *, limit: int = 100) -> int:
    """Housekeeping: a snapshot whose run ended without its handler (the lease expired too often, or it was
    cancelled before a worker took it) would say ``generating`` for ever; it is marked failed with the run's
    reason instead. Returns how many."""
    with transactions.unattended() as work:
        abandoned = work.stores.snapshot_sources.abandoned(limit=limit)
        return sum(_mark_failed(work.stores, a.organisation_id, a.snapshot_id, a.run_id, a.reason)
                   for a in abandoned)


def _mark_failed(stores: Stores, org_id: int, snapshot_id: int, run_id: int, reason: str) -> bool:
    """Mark the snapshot failed with the reason (whoever may still read it: it stays private); False when it
    is no longer this run's generating snapshot."""
    record = stores.records.for_update(org_id, snapshot_id)
    if record is None or record.status != "generating" or generating_run_id(record) != run_id:
        return False
    body = f"Generation failed: {reason}"[:MAX_FAILURE_CHARS]
    stores.records.save(replace(record, status="failed", body=body), expected_version=record.version)
    return True
