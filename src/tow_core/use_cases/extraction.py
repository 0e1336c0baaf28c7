"""Memory extraction runs (SPEC §6 workflow 2, issue 14 items 1 and 5): queued when a doc is saved, when a chat
answer is saved (the conversation's ``memory_extraction`` on), or on demand; a worker runs each as the
source's author and proposes one pending memory diff (``tow_core.extraction`` states what may be proposed).

Rules:
- Without AI configured nothing is queued (saves succeed) and asking on demand is AiNotConfigured. With
  ``ai.auto_extraction`` off, saves and answers queue nothing and only asking on demand does.
- Debounce (``ai.extraction_debounce_seconds``): a doc's save queues a run only if no run of that doc is still
  queued (the queued one reads the doc when it runs) and none was queued within the debounce window. Queueing
  happens in the saving transaction, which holds the doc's row lock, so two saves cannot both queue. A save by
  someone else than the queued run's owner replaces that run (cancelled before it started) by one of theirs:
  the run acts as the doc's last editor.
- The run acts as the **source's author**, with access loaded fresh: for a doc, its *last editor* — whoever
  last changed its title or body (the newest revision's ``replaced_by``; the creator when the text never
  changed). That is the person whose words are extracted and who saw the doc as it is; a save queues its run
  as the saver, who is that person. For a chat answer, the conversation's owner. Asking on demand needs write
  access to the doc's scope; the run still acts as the doc's last editor, so what the caller asks for never
  reads more than the text's author may.
- The run reads the source and the active memory items of the source's scope the author reads (semantic
  neighbours of the source when embeddings are configured, then the newest), makes one model call
  (EgressPurpose.EXTRACTION, the request naming the source's records and every item sent) and proposes one
  pending diff through ``memory_review.propose_diff`` in the source's scope, author = the run's owner, with the
  run's id. Only items of that same scope can be changed, so no operation writes the source's content wider.
- A source the author can no longer read, a chat answer drawing on a record they can no longer read, or a
  conversation they no longer own proposes nothing: the run completes saying why, and sends nothing.
- A chat answer's diff goes in the conversation's scope (a project, or the organisation) unless the answer drew
  on a record of another, narrower scope, or the owner only views the conversation's project: then in the
  owner's private scope, so a proposal never shows more people a restricted record's content than could read
  it. A doc whose author can no longer write its scope (where its diff would go) proposes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tow_core import knowledge
from tow_core.access import Scope, ScopeKind, can_write_scope
from tow_core.agent_runs import (
    AgentRun,
    AgentRunFailed,
    AgentRunResult,
    AgentRunStatus,
    Heartbeat,
    TokenUsage,
    new_run,
)
from tow_core.ai import (
    AI_NOT_CONFIGURED_MESSAGE,
    EgressContext,
    EgressPurpose,
    EmbeddingModel,
    ReasoningModel,
)
from tow_core.conversations import TurnRole, owned_conversation
from tow_core.errors import AccessDenied, AiNotConfigured, InvalidInput, NotConfigured, NotFound, RetryableError
from tow_core.extraction import (
    DUPLICATE_COSINE,
    EXTRACTION_RUN,
    MAX_CONTEXT_ITEMS,
    Source,
    dropped_json,
    read_answer,
    request_for,
)
from tow_core.knowledge import Workspace
from tow_core.live import LiveEvent
from tow_core.memory_diffs import DiffSource
from tow_core.memory_review import MemoryDesk, propose_diff
from tow_core.records import DisplayId, Record, RecordQuery, RecordType
from tow_core.semantic_search import SemanticIndex
from tow_core.unit_of_work import Acting, Credential, Stores, Transactions, notifications_of
from tow_core.use_cases.agent_runs import VisibleAgentRun

_MEMORY = RecordQuery(frozenset({RecordType.MEMORY}), frozenset({"active"}))
_NEIGHBOUR_QUERY_CHARS = 8_000  # of the source, embedded to find its semantic neighbours
_NEWEST_PAGES = 5  # pages of readable memory looked through for the newest items of the source's scope
_GONE = "the source's author is no longer a member of the organisation"


@dataclass(frozen=True)
class ExtractionPolicy:
    """Whether extraction runs can be queued (AI configured), whether saves and answers queue them by
    themselves (``ai.auto_extraction``; else only on demand) and the per-doc debounce."""

    enabled: bool = False
    debounce: timedelta = timedelta(seconds=60)
    automatic: bool = True


def _project_id(scope: Scope) -> int | None:
    return scope.ref_id if scope.kind is ScopeKind.PROJECT else None


def queue_for_doc(stores: Stores, policy: ExtractionPolicy, doc: Record, *, author_id: int, now: datetime,
                  debounce: bool = True) -> AgentRun | None:
    """Queue an extraction of ``doc`` acting as ``author_id`` — unless AI is off, a run of it is still queued
    (as ``author_id``: one queued as someone else, who is no longer the last editor, is cancelled and replaced),
    or (``debounce``) one was queued within the window. Returns the run queued, or None."""
    if not policy.enabled or doc.type is not RecordType.DOC:
        return None
    latest = stores.agent_runs.latest_for_record(doc.organisation_id, EXTRACTION_RUN, doc.id)
    if latest is not None and latest.status is AgentRunStatus.QUEUED and latest.owner_id != author_id:
        stores.agent_runs.request_cancel(latest.id, now=now)  # never started: cancelled at once
    elif latest is not None and (latest.status is AgentRunStatus.QUEUED
                                 or (debounce and now - latest.created_at < policy.debounce)):
        return None
    return stores.agent_runs.create(new_run(EXTRACTION_RUN, owner_id=author_id, organisation_id=doc.organisation_id,
                                            project_id=_project_id(doc.scope),
                                            input={"source": "doc", "record_id": doc.id}), now=now)


def after_doc_write(acting: Acting, policy: ExtractionPolicy, before: Record | None, saved: Record) -> None:
    """A doc created, or its title or body changed, by the acting person: queue its extraction as them (the
    saver is the text's last editor), debounced. Other saves (fields, status, scope) queue nothing."""
    if not policy.automatic:
        return
    if saved.type is RecordType.DOC and (before is None or (before.title, before.body) != (saved.title, saved.body)):
        queue_for_doc(acting.stores, policy, saved, author_id=acting.principal.user_id, now=acting.now)


def queue_for_chat(stores: Stores, policy: ExtractionPolicy, *, owner_id: int, org_id: int, project_id: int | None,
                   conversation_id: int, turn_id: int, now: datetime) -> AgentRun | None:
    if not (policy.enabled and policy.automatic):
        return None
    return stores.agent_runs.create(new_run(EXTRACTION_RUN, owner_id=owner_id, organisation_id=org_id,
                                            project_id=project_id,
                                            input={"source": "chat", "conversation_id": conversation_id,
                                                   "turn_id": turn_id}), now=now)


def last_editor(stores: Stores, doc: Record) -> int | None:
    """Who last changed the doc's title or body: the newest revision's ``replaced_by``, else its creator."""
    newest = stores.history.revisions.list(doc.id, before_version=None, limit=1)
    return newest[0].replaced_by if newest and newest[0].replaced_by is not None else doc.author_id


def record_ref(text: str) -> int | DisplayId:
    """A path's ``record_id_or_display_id``: a record id (digits) or a display ID like DOC-7."""
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    try:
        return DisplayId.parse(text)
    except InvalidInput as exc:
        raise InvalidInput("give a record id or a display ID like DOC-7", field="display_id") from exc


@dataclass(frozen=True)
class MemoryExtractionUseCases:
    transactions: Transactions
    ai_configured: bool
    policy: ExtractionPolicy = ExtractionPolicy()

    def extract(self, credential: Credential, org_id: int, record: int | DisplayId) -> VisibleAgentRun:
        """Queue an extraction of a doc the caller can write (or hand back the one still queued for it)."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            doc = self._doc(ws, record)
            if not can_write_scope(ws.principal, doc.scope, knowledge.project_access_of(ws, doc.scope)):
                raise AccessDenied("extracting memory from a doc needs write access to its scope")
            if not self.ai_configured:
                raise AiNotConfigured(AI_NOT_CONFIGURED_MESSAGE)
            author = last_editor(acting.stores, doc) or acting.principal.user_id
            run = queue_for_doc(acting.stores, ExtractionPolicy(True, self.policy.debounce), doc, author_id=author,
                                now=acting.now, debounce=False)
            run = run or acting.stores.agent_runs.latest_for_record(org_id, EXTRACTION_RUN, doc.id)
            assert run is not None
            mine = run.owner_id == acting.principal.user_id
            return VisibleAgentRun(run if mine else run.metadata_only(), content_visible=mine)

    @staticmethod
    def _doc(ws: Workspace, record: int | DisplayId) -> Record:
        found = (ws.records.readable(ws.principal.user_id, ws.org_id, record) if isinstance(record, int)
                 else ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id, record))
        if found is None:
            raise NotFound("record not found")
        if found.type is not RecordType.DOC:
            raise InvalidInput(f"memory is extracted from docs; {found.display_id} is a {found.type.value}",
                               field="display_id")
        return found


# --- the worker's handler ---------------------------------------------------------------------------------


class _Skip(Exception):
    """The source proposes nothing, for the reason given (the run completes, nothing is sent)."""


@dataclass(frozen=True)
class ExtractionRuns:
    """The worker's handler of ``memory_extraction`` runs."""

    transactions: Transactions
    model: ReasoningModel
    embedder: EmbeddingModel | None = None

    def __call__(self, run: AgentRun, heartbeat: Heartbeat) -> AgentRunResult:
        try:
            return self._extract(run, heartbeat)
        except _Skip as skip:
            return AgentRunResult({"diff_id": None, "proposed": 0, "dropped": [], "message": str(skip)})

    def _extract(self, run: AgentRun, heartbeat: Heartbeat) -> AgentRunResult:
        with self._as_owner(run) as (ws, stores, _):
            source = self._source(ws, stores, run)
            items = self._memory(ws, stores.semantic, source)
        heartbeat()
        context = EgressContext(EgressPurpose.EXTRACTION, run.owner_id, run.organisation_id)
        result = self.model.respond(request_for(source, items), context)
        heartbeat()
        with self._as_owner(run) as (ws, stores, now):
            proposal = read_answer(result, source, items, lambda text: self._similar(ws, stores.semantic, source,
                                                                                      text))
            output: dict[str, Any] = {"source": source.kind.value, "source_id": str(source.display_id or "") or None,
                                      "diff_id": None, "proposed": len(proposal.operations),
                                      "dropped": dropped_json(proposal.dropped)}
            if proposal.operations:
                view = propose_diff(MemoryDesk(ws, stores.memory_diffs, notifications_of(stores, now)),
                                    scope=source.scope,
                                    project=knowledge.project_access_of(ws, source.scope),
                                    operations=proposal.operations, source=source.kind, source_id=source.display_id,
                                    rationale=proposal.rationale, agent_run_id=run.id)
                stores.live.publish(LiveEvent.reviews_changed(view.diff.scope))  # its reviewers' inbox counts
                output |= {"diff_id": view.diff.id, "message": "proposed a pending memory diff for review"}
            else:
                output["message"] = ("nothing new to remember: no diff proposed" if proposal.answered
                                     else "the model proposed nothing (it did not call propose_memory_diff)")
        return AgentRunResult(output, TokenUsage(result.usage.input_tokens, result.usage.output_tokens))

    @contextmanager
    def _as_owner(self, run: AgentRun) -> Iterator[tuple[Workspace, Stores, datetime]]:
        """One unit of work as the run's owner (``Transactions.on_behalf_of``: access loaded fresh, writes
        attributed to them); an owner gone from the organisation proposes nothing."""
        entered = False
        try:
            with self.transactions.on_behalf_of(run.owner_id, run.organisation_id) as owner:
                entered = True
                principal = owner.workspace.principal
                if not principal.is_active or run.organisation_id not in principal.org_roles:
                    raise _Skip(_GONE)
                yield owner.workspace, owner.stores, owner.now
        except NotFound as exc:
            if entered:
                raise
            raise _Skip(_GONE) from exc

    # --- the source ------------------------------------------------------------------------------------

    def _source(self, ws: Workspace, stores: Stores, run: AgentRun) -> Source:
        kind = run.input.get("source")
        try:
            if kind == "doc":
                return self._doc(ws, int(run.input["record_id"]))
            if kind == "chat":
                return self._chat(ws, stores, int(run.input["conversation_id"]), int(run.input["turn_id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentRunFailed("an extraction run's input names its source", error_code="invalid_input") from exc
        raise AgentRunFailed("an extraction run's source is doc or chat", error_code="invalid_input")

    @staticmethod
    def _doc(ws: Workspace, record_id: int) -> Source:
        doc = ws.records.readable(ws.principal.user_id, ws.org_id, record_id)
        if doc is None or doc.type is not RecordType.DOC:
            raise _Skip("the doc is gone or its author can no longer read it: nothing was sent")
        if doc.status != "active":
            raise _Skip(f"{doc.display_id} is {doc.status}: only active docs are extracted")
        if not can_write_scope(ws.principal, doc.scope, knowledge.project_access_of(ws, doc.scope)):
            raise _Skip(f"the author of {doc.display_id} can no longer write in its scope, where its diff would "
                        "be proposed: nothing was sent")
        return Source(DiffSource.DOC, doc.scope, doc.display_id, doc.title, doc.body, (str(doc.display_id),))

    @staticmethod
    def _chat(ws: Workspace, stores: Stores, conversation_id: int, turn_id: int) -> Source:
        try:
            conversation = owned_conversation(ws, stores.conversations, conversation_id)
        except NotFound as exc:
            raise _Skip("the conversation is gone or its owner no longer reads its scope") from exc
        turns = stores.conversations.turns(conversation.id)
        answer = next((t for t in turns if t.id == turn_id and t.role is TurnRole.ASSISTANT), None)
        if answer is None:
            raise _Skip("the answer is gone (the conversation was deleted)")
        earlier = [t for t in turns if t.position <= answer.position]
        question = next((t for t in reversed(earlier) if t.role is TurnRole.USER), None)
        drawn = dict.fromkeys(str(r) for t in earlier for a in t.tool_activity for r in a.get("records", ()))
        drawn.update(dict.fromkeys(str(c.get("display_id")) for c in answer.citations if c.get("display_id")))
        scope = (Scope.project(ws.org_id, conversation.project_id) if conversation.project_id is not None
                 else Scope.organisation(ws.org_id))
        for text in drawn:
            record = ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id, DisplayId.parse(text))
            if record is None:
                raise _Skip("the answer drew on a record its owner can no longer read: nothing was sent")
            if record.scope not in (scope, Scope.organisation(ws.org_id)):
                scope = Scope.private(ws.org_id, ws.principal.user_id)
        if not can_write_scope(ws.principal, scope, knowledge.project_access_of(ws, scope)):
            scope = Scope.private(ws.org_id, ws.principal.user_id)  # a project its owner only views
        text = f"Question: {question.text if question else ''}\n\nAnswer: {answer.text}"
        return Source(DiffSource.CHAT, scope, None, conversation.title, text, tuple(drawn))

    # --- the memory it is read against ----------------------------------------------------------------

    def _memory(self, ws: Workspace, index: SemanticIndex, source: Source) -> list[Record]:
        """Active memory items of the source's scope that the author reads: semantic neighbours first (when
        embeddings are configured and ready), then the newest; at most ``MAX_CONTEXT_ITEMS``."""
        query = RecordQuery(_MEMORY.types, _MEMORY.statuses, _project_id(source.scope))
        found: dict[int, Record] = {}
        for hit in self._nearest(ws, index, source, f"{source.title}\n{source.text}"[:_NEIGHBOUR_QUERY_CHARS],
                                 query, MAX_CONTEXT_ITEMS):
            record = ws.records.readable(ws.principal.user_id, ws.org_id, hit[0])
            if record is not None and record.scope == source.scope:
                found.setdefault(record.id, record)
        cursor: str | None = None
        for _ in range(_NEWEST_PAGES):  # the newest of the scope, among the readable items of every scope
            newest = knowledge.list_records(ws, query, cursor=cursor, limit=knowledge.MAX_PAGE)
            for record in newest.items:
                if record.scope == source.scope:
                    found.setdefault(record.id, record)
            cursor = newest.next_cursor
            if cursor is None or len(found) >= MAX_CONTEXT_ITEMS:
                break
        return list(found.values())[:MAX_CONTEXT_ITEMS]

    def _nearest(self, ws: Workspace, index: SemanticIndex, source: Source, text: str, query: RecordQuery,
                 k: int) -> Sequence[tuple[int, DisplayId, float]]:
        """(record id, display ID, cosine) of the readable records nearest ``text``; none without embeddings.
        The embedding call is ledgered as extraction, naming the source's records (the text is theirs)."""
        space = index.active_space() if self.embedder is not None else None
        if self.embedder is None or space is None or (space.model, space.dim) != (self.embedder.model_name,
                                                                                  self.embedder.dimension):
            return ()
        context = EgressContext(EgressPurpose.EXTRACTION, ws.principal.user_id, ws.org_id, source.records)
        try:
            [vector] = self.embedder.embed([text], context)
        except (RetryableError, NotConfigured):  # the text check still runs; the ledger shows the cause
            return ()
        hits = index.nearest_readable(ws.principal.user_id, ws.org_id, space, vector, text[:200], query, k)
        return [(h.summary.id, h.summary.display_id, h.rank) for h in hits]

    def _similar(self, ws: Workspace, index: SemanticIndex, source: Source, text: str) -> list[DisplayId]:
        """Active memory items the author reads (any scope) at cosine ≥ DUPLICATE_COSINE to ``text``."""
        return [display_id for _, display_id, cosine in self._nearest(ws, index, source, text, _MEMORY, 3)
                if cosine >= DUPLICATE_COSINE]
