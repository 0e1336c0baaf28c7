"""The chat assistant's tools (issue 13 item 3), each run **as the asking user** through the same rules as
every front door: a fresh read of the asker's ``Workspace`` per call (``AskerReads``), so revoked access
counts from the next call on, and one answer — "not found" — for a record that does not exist and one the
asker cannot read.

Tools: ``search_records`` (keyword / semantic / hybrid, by type and status, inside the conversation's
project when it has one), ``get_record`` (by display ID), ``list_backlinks``, ``web_search`` and
``fetch_page`` (through the ``WebSearch`` port; without EXA_API_KEY they answer its configuration error,
which the model passes on). ``fetch_page`` opens only pages a web search returned in this run or URLs the
user wrote: a URL a record or a web page suggests (``https://evil/?q=<secret>``) is refused, so injected
text cannot make the assistant send workspace content to an address of its choosing.

Tool results are data, never instructions: each is one JSON object between ``<tool-data>`` and
``</tool-data>``, records as ``{"display_id", "type", "status", "title", "body"}`` fields, with every ``<``
escaped (``\\u003c``) so no text inside can close the block. Each call's activity names the records and
web sources it returned; the loop uses that to ledger requests and to check citations.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any

from tow_core import knowledge, semantic_search
from tow_core.ai import EgressContext, EgressPurpose, EmbeddingModel, ToolSpec, WebSearch
from tow_core.chat_actions import (
    AWAITS_USER,
    MEMORY_CHANGE,
    MEMORY_OPERATIONS,
    TICKET,
    PendingAction,
    check_against_item,
    memory_proposal,
    ticket_proposal,
)
from tow_core.citations import WebSource
from tow_core.errors import Conflict, NotConfigured, NotFound, RetryableError, TowError
from tow_core.knowledge import Workspace
from tow_core.records import HIGHLIGHT_END, HIGHLIGHT_START, MEMORY_TYPES, DisplayId, Record, RecordQuery, RecordType
from tow_core.semantic_search import SearchMode, SemanticIndex

MAX_SEARCH_RESULTS = 20
MAX_WEB_RESULTS = 10
MAX_BODY_CHARS = 20_000  # a longer body is cut (and says so): one record must not crowd out the rest
MAX_PAGE_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class Reading:
    """One short unit of work as the asker: their workspace (membership checked) and the semantic index."""

    workspace: Workspace
    semantic: SemanticIndex


AskerReads = Callable[[], AbstractContextManager[Reading]]


@dataclass(frozen=True, slots=True)
class ToolActivity:
    """One tool call as the run log and the stream show it."""

    round: int
    tool: str
    arguments: Mapping[str, Any]
    records: tuple[str, ...] = ()  # display IDs whose content the result carries
    web_sources: tuple[WebSource, ...] = ()
    error: str | None = None
    pending_action: PendingAction | None = None  # what a propose_* call proposed, for the user to apply


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    output: str
    records: tuple[str, ...] = ()
    web_sources: tuple[WebSource, ...] = ()
    error: str | None = None
    pending_action: PendingAction | None = None


class ToolRefused(Exception):
    """A tool call the tool answers with an error text instead of data (bad arguments, a refused URL)."""


def tool_data(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, ensure_ascii=False, default=str).replace("<", "\\u003c")
    return f"<tool-data>\n{text}\n</tool-data>"


def _string(arguments: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = arguments.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ToolRefused(f"{name} must be a non-empty string")
    return value.strip()


def _strings(arguments: Mapping[str, Any], name: str) -> list[str]:
    value = arguments.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ToolRefused(f"{name} must be a list of strings")
    return value


def _limit(arguments: Mapping[str, Any], default: int, maximum: int) -> int:
    value = arguments.get("limit", default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ToolRefused(f"limit must be a whole number from 1 to {maximum}")
    return value


def _display_id(arguments: Mapping[str, Any]) -> DisplayId:
    text = _string(arguments, "display_id")
    assert text is not None
    try:
        return DisplayId.parse(text.upper())
    except TowError as exc:
        raise ToolRefused(exc.message) from exc


def _record_payload(record: Record) -> dict[str, Any]:
    body = record.body
    payload: dict[str, Any] = {"display_id": str(record.display_id), "type": record.type.value,
                               "status": record.status, "title": record.title}
    if len(body) > MAX_BODY_CHARS:
        payload["body_truncated_at"] = MAX_BODY_CHARS
        body = body[:MAX_BODY_CHARS]
    payload["body"] = body
    if record.fields:
        payload["fields"] = dict(record.fields)
    return payload


def _plain(snippet: str) -> str:
    return snippet.replace(HIGHLIGHT_START, "").replace(HIGHLIGHT_END, "")


_TYPES = [t.value for t in RecordType]
_MODES = [m.value for m in SearchMode]
SPECS: tuple[ToolSpec, ...] = (
    ToolSpec("search_records", "Search the workspace records the user can read. Returns display IDs, titles and "
             "snippets; read a record in full with get_record.", {
                 "type": "object", "required": ["query"], "properties": {
                     "query": {"type": "string"},
                     "mode": {"type": "string", "enum": _MODES},
                     "types": {"type": "array", "items": {"type": "string", "enum": _TYPES}},
                     "statuses": {"type": "array", "items": {"type": "string"}},
                     "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_RESULTS}}}),
    ToolSpec("get_record", "Read one record by its display ID (e.g. DOC-7, APP-42).", {
        "type": "object", "required": ["display_id"], "properties": {"display_id": {"type": "string"}}}),
    ToolSpec("list_backlinks", "List the records that mention a record's display ID.", {
        "type": "object", "required": ["display_id"], "properties": {"display_id": {"type": "string"}}}),
    ToolSpec("web_search", "Search the public web. Cite a result as [web:N] with its ref.", {
        "type": "object", "required": ["query"], "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_WEB_RESULTS}}}),
    ToolSpec("fetch_page", "Read a web page returned by web_search in this conversation, or a URL the user gave. "
             "Cite it as [web:N] with its ref.", {
                 "type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}),
    ToolSpec("propose_ticket", "Propose a new ticket. Nothing is written: the user sees the proposal and may apply "
             "it. Priority 1 (highest) to 4.", {
                 "type": "object", "required": ["title"], "properties": {
                     "title": {"type": "string"}, "body": {"type": "string"},
                     "priority": {"type": "integer", "minimum": 1, "maximum": 4}}}),
    ToolSpec("propose_memory_change", "Propose a change to the workspace memory: create a memory item, or update or "
             "retire an existing one (by display ID, at the version get_record showed). Nothing is written: the "
             "user may apply it, which makes it a pending memory diff for review.", {
                 "type": "object", "required": ["operation"], "properties": {
                     "operation": {"type": "string", "enum": list(MEMORY_OPERATIONS)},
                     "display_id": {"type": "string"}, "base_version": {"type": "integer", "minimum": 1},
                     "title": {"type": "string"}, "body": {"type": "string"},
                     "memory_type": {"type": "string", "enum": list(MEMORY_TYPES)},
                     "importance": {"type": "integer", "minimum": 1, "maximum": 5},
                     "rationale": {"type": "string"}}}),
)


@dataclass
class ChatTools:
    """The tools of one run: who asks, in which organisation and project, and what the run returned so far."""

    reads: AskerReads
    web: WebSearch
    embedder: EmbeddingModel | None
    user_id: int
    org_id: int
    project_id: int | None = None  # the conversation's scope: None is all projects
    user_urls: frozenset[str] = frozenset()  # URLs the user wrote, which fetch_page may open
    records_in_conversation: Callable[[], tuple[str, ...]] = tuple
    _web: dict[str, WebSource] = field(default_factory=dict)
    _actions: list[PendingAction] = field(default_factory=list)

    def run(self, name: str, arguments_json: str) -> tuple[Mapping[str, Any], ToolAnswer]:
        try:
            arguments = json.loads(arguments_json or "{}")
        except ValueError:
            return {}, self._error("the arguments are not a JSON object")
        if not isinstance(arguments, dict):
            return {}, self._error("the arguments are not a JSON object")
        handler = getattr(self, f"_tool_{name}", None) if name in {s.name for s in SPECS} else None
        if handler is None:
            return arguments, self._error(f"there is no tool named {name!r}")
        try:
            return arguments, handler(arguments)
        except ToolRefused as exc:
            return arguments, self._error(str(exc))
        except NotFound as exc:
            return arguments, self._error(exc.message)
        except (NotConfigured, RetryableError) as exc:  # web search unconfigured, provider down: say so
            return arguments, self._error(exc.message)
        except TowError as exc:  # e.g. a search query without words: the model may try another
            return arguments, self._error(exc.message)

    def _error(self, message: str) -> ToolAnswer:
        return ToolAnswer(tool_data({"error": message}), error=message)

    # --- workspace ---------------------------------------------------------------------------------------

    def _tool_search_records(self, arguments: Mapping[str, Any]) -> ToolAnswer:
        text = _string(arguments, "query")
        mode_text = _string(arguments, "mode", required=False)
        if mode_text is not None and mode_text not in _MODES:
            raise ToolRefused(f"mode must be one of {', '.join(_MODES)}")
        unknown = [t for t in _strings(arguments, "types") if t not in _TYPES]
        if unknown:
            raise ToolRefused(f"types must be among {', '.join(_TYPES)}")
        query = RecordQuery(frozenset(RecordType(t) for t in _strings(arguments, "types")),
                            frozenset(_strings(arguments, "statuses")), self.project_id)
        limit = _limit(arguments, 10, MAX_SEARCH_RESULTS)
        with self.reads() as reading:
            result = semantic_search.search(reading.workspace, text or "", query,
                                            mode=SearchMode(mode_text) if mode_text else None, cursor=None,
                                            limit=limit, embedder=self.embedder, index=reading.semantic)
            hits = [{"display_id": str(h.summary.display_id), "type": h.summary.type.value,
                     "status": h.summary.status, "title": h.summary.title, "snippet": _plain(h.snippet)}
                    for h in result.hits]
        payload: dict[str, Any] = {"mode": result.mode.value, "results": hits}
        if result.fallback_reason is not None:
            payload["fallback_reason"] = result.fallback_reason.value
        return ToolAnswer(tool_data(payload), records=tuple(h["display_id"] for h in hits))

    def _tool_get_record(self, arguments: Mapping[str, Any]) -> ToolAnswer:
        display_id = _display_id(arguments)
        with self.reads() as reading:
            record = knowledge.get_record(reading.workspace, display_id)  # NotFound: absent or unreadable alike
            payload = _record_payload(record)
        return ToolAnswer(tool_data({"records": [payload]}), records=(payload["display_id"],))

    def _tool_list_backlinks(self, arguments: Mapping[str, Any]) -> ToolAnswer:
        display_id = _display_id(arguments)
        with self.reads() as reading:
            links = [{"display_id": str(s.display_id), "type": s.type.value, "status": s.status, "title": s.title}
                     for s in knowledge.backlinks(reading.workspace, display_id)]
        return ToolAnswer(tool_data({"display_id": str(display_id), "backlinks": links}),
                          records=tuple(link["display_id"] for link in links))

    # --- web -----------------------------------------------------------------------------------------------

    def _context(self, purpose: EgressPurpose) -> EgressContext:
        # The model wrote the query or chose the URL after reading the conversation's records: ledger them.
        return EgressContext(purpose, self.user_id, self.org_id, self.records_in_conversation())

    def _source(self, url: str, title: str) -> WebSource:
        if url not in self._web:
            self._web[url] = WebSource(len(self._web) + 1, url, title)
        return self._web[url]

    @property
    def web_sources(self) -> dict[int, WebSource]:
        return {source.ref: source for source in self._web.values()}

    def _tool_web_search(self, arguments: Mapping[str, Any]) -> ToolAnswer:
        text = _string(arguments, "query")
        limit = _limit(arguments, 5, MAX_WEB_RESULTS)
        results = self.web.search(text or "", limit, self._context(EgressPurpose.WEB_SEARCH))
        sources = [self._source(r.url, r.title) for r in results]
        payload = [{"ref": s.ref, "url": r.url, "title": r.title, "snippet": r.snippet, "published": r.published}
                   for s, r in zip(sources, results, strict=True)]
        return ToolAnswer(tool_data({"results": payload}), web_sources=tuple(sources))

    def _tool_fetch_page(self, arguments: Mapping[str, Any]) -> ToolAnswer:
        url = _string(arguments, "url") or ""
        if url not in self._web and url not in self.user_urls:
            raise ToolRefused("fetch_page opens only pages web_search returned in this conversation or URLs the "
                              "user wrote")
        page = self.web.fetch(url, self._context(EgressPurpose.WEB_FETCH))
        source = self._source(url, page.title)
        text = page.text[:MAX_PAGE_CHARS]
        return ToolAnswer(tool_data({"ref": source.ref, "url": page.url, "title": page.title, "text": text}),
                          web_sources=(source,))


    # --- proposals: recorded for the user to apply, never written (tow_core.chat_actions) -----------------

    @property
    def pending_actions(self) -> tuple[PendingAction, ...]:
        return tuple(self._actions)

    def _propose(self, kind: str, proposal: dict[str, Any]) -> ToolAnswer:
        action = PendingAction(len(self._actions) + 1, kind, proposal)
        self._actions.append(action)
        return ToolAnswer(tool_data({"status": AWAITS_USER, "proposal": {"kind": kind, **proposal}}),
                          pending_action=action)

    def _tool_propose_ticket(self, arguments: Mapping[str, Any]) -> ToolAnswer:
        return self._propose(TICKET, ticket_proposal(arguments))

    def _tool_propose_memory_change(self, arguments: Mapping[str, Any]) -> ToolAnswer:
        proposal = memory_proposal(arguments)
        if proposal["operation"] == "create":
            return self._propose(MEMORY_CHANGE, proposal)
        with self.reads() as reading:  # based on what the asker reads now (applying checks it again)
            ws = reading.workspace
            item = ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id,
                                                     DisplayId.parse(proposal["display_id"]))
        # The answer tells the model the item's version and status, so the next request carries facts of it and
        # its ledger row must name it, whether the proposal is taken or refused as stale. NotFound (an item the
        # asker cannot read) names nothing.
        try:
            check_against_item(proposal, item)
        except Conflict as stale:
            return replace(self._error(stale.message), records=(str(item.display_id),))
        return replace(self._propose(MEMORY_CHANGE, proposal), records=(str(item.display_id),))


def urls_in(texts: Sequence[str]) -> frozenset[str]:
    """The http(s) URLs written in ``texts`` (the user's own messages), trailing punctuation trimmed."""
    found = set()
    for text in texts:
        for word in text.split():
            if word.startswith(("http://", "https://")):
                found.add(word.rstrip(".,;:!?)]}>\"'"))
    return frozenset(found)
