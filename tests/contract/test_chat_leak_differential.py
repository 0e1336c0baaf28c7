"""Differential leak test of grounded chat (issue 13; SPEC §2 "One predicate", §6), on a real PostgreSQL.

The random worlds of test_visibility_differential (organisations, memberships, deactivated users, groups,
open/restricted projects, direct and group grants, records in all four scopes) become real records of every
type. Each record carries two secret words of its own, one in its title and one in its body; bodies mention
other display IDs (``see DOC-2``, references for backlinks, across organisations too); display numbers
restart per organisation, so ``DOC-1`` names a different record in each; about two thirds of the records
are embedded, so semantic and hybrid search return things.

For each world, a few askers (a user in an organisation, members or not, deactivated or not, maybe in a
project-scoped conversation) run the real ``ChatAssistant`` with the real tools over the Postgres stores:
every tool read goes through ``reads_as`` and a unit of work on the world's connection (a savepoint each).
The scripted model (``Omniscient``, below) knows the whole world. It calls every tool over everything:
a search for every secret word in every mode, an "any of these words" search in every mode and type
filter and with status filters, ``get_record``, ``list_backlinks`` and a ``propose_memory_change`` for
EVERY display ID in the world (readable or not, other organisations' too, and one that exists nowhere),
and a web search. Some runs then revoke the asker's access through the directory store (grant removed,
group membership removed, project restricted, membership removed, user deactivated) and call every tool
again, or revoke just before answering. The answer parrots every tool output it received and cites every
display ID in the world, bare, with each record's secret words as quotes, and with a fabricated quote.

Against an oracle computed from the world by SPEC §2's table (``reads`` below, not the policy code):
- no tool output carries a secret word of a record the asker could not read at that moment, nor its
  display ID as a result; get, backlinks and every search mode answer exactly the readable records
  (keyword: those holding the word; semantic: every readable embedded one; hybrid: both);
- kept citations are exactly the readable records a tool returned, with quotes they contain; every other
  citation is dropped with the right reason (``not_returned_by_tool``, ``not_readable``, ``quote_not_found``);
  a record revoked during the run is not returned by later calls and is dropped ``not_readable``;
- the saved answer text holds no secret word of a record the asker could never read (a revoked record's
  words, parroted from a tool output read while allowed, are the model's prose and may stay);
- every ``ReasoningRequest`` names in ``record_display_ids`` each record whose secret words it carries, and
  only records the asker could read; web calls are ledgered with readable records only.

``STATS`` counts worlds, asker runs, tool calls, requests and citations; the module fixture prints them.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.test_visibility_differential import World, load, worlds
from tests.fake_embeddings import FakeEmbeddingModel
from tests.fake_reasoning import ScriptedReasoningModel, call, step
from tests.semantic_vectors import bag_of_words_vector
from tests.suite_figures import say
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.conversations import PgConversations
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.email_outbox import PgEmailOutbox
from tow_adapters.postgres.embeddings import PgEmbeddingSpaces, PgSemanticIndex, vector_literal
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.exports import PgExportStore
from tow_adapters.postgres.history import (
    PgDocRevisions,
    PgRecordTree,
    PgTicketActivity,
    PgTicketComments,
    PgTicketLinks,
)
from tow_adapters.postgres.jobs import PgJobQueue
from tow_adapters.postgres.live import PgLiveEvents
from tow_adapters.postgres.memory_diffs import PgMemoryDiffStore
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.notifications import PgNotifications
from tow_adapters.postgres.oidc_identities import PgOidcIdentities
from tow_adapters.postgres.organisation_import import PgOrganisationImport
from tow_adapters.postgres.password_resets import PgPasswordResets
from tow_adapters.postgres.records import PgRecordStore
from tow_adapters.postgres.snapshot_sources import PgSnapshotSources
from tow_adapters.postgres.tokens import PgAccessTokens
from tow_adapters.postgres.uploads import PgUploadRecords
from tow_core.access import OrgRole, Scope, ScopeKind, Visibility
from tow_core.agent_runs import RunEventKind
from tow_core.ai import EgressContext, ToolCall, ToolOutput, WebPage, WebResult
from tow_core.chat import Asker, ChatAssistant, ChatQuestion, reads_as, verify
from tow_core.citations import DropReason, normalised
from tow_core.errors import NotFound
from tow_core.record_history import RecordKeeping
from tow_core.records import PREFIXES, TICKET_PREFIX, DisplayId, RecordType
from tow_core.run_events import RunEventLog
from tow_core.unit_of_work import Stores, Transactions

STATS: dict = {"worlds": 0, "stream_events": 0, "asker_runs": 0, "tool_calls": 0, "tool_outputs_checked": 0, "requests": 0,
               "web_calls": 0, "citations": 0, "kept": 0, "revocations": 0, "revoked_not_cited": 0,
               "answers_refused": 0, "leaks": 0}
DROPPED: Counter = Counter()
BY_TOOL: Counter = Counter()

DIM = 16
MODES = (None, "keyword", "semantic", "hybrid")  # None: the default (hybrid, an embedder is configured)
TYPES = [t.value for t in RecordType]
STATUSES = {"memory": ["active", "archived"], "doc": ["active", "archived"], "ticket": ["todo", "done"],
            "decision": ["proposed", "active"], "risk": ["active", "mitigated"], "snapshot": ["active", "superseded"]}
NOWHERE = "DOC-999"  # a display ID no organisation has
FABRICATED = "words no record ever said"
LETTERS = "abcdefghijklmnop"


def code(record_id: int) -> str:
    return LETTERS[record_id // 16 % 16] + LETTERS[record_id % 16]


def title_word(record_id: int) -> str:
    return f"tq{code(record_id)}x"


def body_word(record_id: int) -> str:
    return f"bq{code(record_id)}x"


def reads(world: World, user: int, scope: Scope) -> bool:
    """SPEC §2, written from the table: deny by default, then the scope's rule."""
    role = world.memberships.get((scope.organisation_id, user))
    if not world.active[user] or role is None:
        return False
    admin = role in (OrgRole.OWNER, OrgRole.ADMIN)
    if scope.kind is ScopeKind.ORGANISATION:
        return True
    if scope.kind is ScopeKind.GROUP:
        return admin or (scope.ref_id, user) in world.group_members
    if scope.kind is ScopeKind.USER:
        return scope.ref_id == user
    _, visibility = world.projects[scope.ref_id]
    my_groups = {g for (g, u) in world.group_members if u == user}
    return (visibility is Visibility.OPEN or admin or (scope.ref_id, "user", user) in world.grants
            or any((scope.ref_id, "group", g) in world.grants for g in my_groups))


# --- the world's records ----------------------------------------------------------------------------------


class Facts:
    """The world's records as stored: type, status, display ID, cited display IDs, embedded or not."""

    def __init__(self, world: World, data) -> None:
        self.world = world
        ids = sorted(world.records)
        self.type = {r: data.draw(st.sampled_from(TYPES), label=f"type{r}") for r in ids}
        self.status = {r: data.draw(st.sampled_from(STATUSES[self.type[r]]), label=f"status{r}") for r in ids}
        self.version = {r: data.draw(st.integers(1, 2), label=f"version{r}") for r in ids}
        self.embedded = {r for r in ids if data.draw(st.integers(0, 2), label=f"embedded{r}") > 0}
        numbers: Counter = Counter()
        self.display_id: dict[int, str] = {}
        for r in ids:
            scope = world.records[r]
            prefix = (f"P{scope.ref_id}" if scope.kind is ScopeKind.PROJECT else TICKET_PREFIX) \
                if self.type[r] == "ticket" else PREFIXES[RecordType(self.type[r])]
            numbers[(scope.organisation_id, prefix)] += 1
            self.display_id[r] = f"{prefix}-{numbers[(scope.organisation_id, prefix)]}"
        self.all_display_ids = sorted({*self.display_id.values(), NOWHERE})
        self.cites = {r: data.draw(st.lists(st.sampled_from(self.all_display_ids), max_size=2, unique=True),
                                   label=f"cites{r}") for r in ids}

    def org(self, record_id: int) -> int:
        return self.world.records[record_id].organisation_id

    def resolve(self, org: int, display_id: str) -> int | None:
        return next((r for r, d in self.display_id.items() if d == display_id and self.org(r) == org), None)

    def title(self, r: int) -> str:
        return f"{self.type[r]} {title_word(r)}"

    def body(self, r: int) -> str:
        return " ".join([f"The {body_word(r)} plan.", *(f"see {d}" for d in self.cites[r])])

    def backlinks(self, target: int) -> set[int]:
        """Records whose body cites the target's display ID in its organisation (never itself)."""
        return {s for s in self.world.records if s != target and self.org(s) == self.org(target)
                and self.display_id[target] in self.cites[s]}

    def insert(self, conn: sa.Connection, space) -> None:
        records = PgRecordStore(conn)
        conn.execute(sa.text(
            "INSERT INTO records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, "
            "status, fields, version) VALUES (:id, :o, :type, :prefix, :number, :k, :ref, :title, :body, :status, "
            "CAST(:fields AS jsonb), :version)"),
            [{"id": r, "o": s.organisation_id, "type": self.type[r], "prefix": self.display_id[r].split("-")[0],
              "number": int(self.display_id[r].split("-")[1]), "k": s.kind.value, "ref": s.ref_id,
              "title": self.title(r), "body": self.body(r), "status": self.status[r], "version": self.version[r],
              "fields": json.dumps({"memory_type": "fact"} if self.type[r] == "memory" else {})}
             for r, s in self.world.records.items()])
        for r in self.world.records:
            records.set_references(self.org(r), r, [DisplayId.parse(d) for d in self.cites[r]])
        if self.embedded:
            conn.execute(sa.text(
                "INSERT INTO embedding_chunks (space_id, record_id, chunk, content_hash, embedding) "
                "VALUES (:space, :id, 0, 'h', CAST(:v AS vector))"),
                [{"space": space.id, "id": r,
                  "v": vector_literal(bag_of_words_vector(f"{self.title(r)}\n{self.body(r)}", DIM))}
                 for r in sorted(self.embedded)])


# --- the unit of work on the world's connection ---------------------------------------------------------------


def transactions_on(conn: sa.Connection) -> Transactions:
    """The real ``Stores`` (as the composition root builds them), each unit of work a savepoint of the world."""

    @contextmanager
    def unit_of_work() -> Iterator[Stores]:
        with conn.begin_nested():
            history = RecordKeeping(revisions=PgDocRevisions(conn), tree=PgRecordTree(conn),
                                    activity=PgTicketActivity(conn), comments=PgTicketComments(conn),
                                    links=PgTicketLinks(conn), live=PgLiveEvents(conn))
            yield Stores(directory=PgDirectory(conn), records=PgRecordStore(conn), history=history,
                         memory_diffs=PgMemoryDiffStore(conn), uploads=PgUploadRecords(conn), jobs=PgJobQueue(conn),
                         exports=PgExportStore(conn), organisation_import=PgOrganisationImport(conn),
                         semantic=PgSemanticIndex(conn), agent_runs=PgAgentRuns(conn),
                         conversations=PgConversations(conn), snapshot_sources=PgSnapshotSources(conn),
                         oidc_identities=PgOidcIdentities(conn), tokens=PgAccessTokens(conn),
                         email_outbox=PgEmailOutbox(conn), password_resets=PgPasswordResets(conn),
                         live=history.live,
                         notifications=PgNotifications(conn))

    return Transactions(unit_of_work, lambda: datetime(2026, 1, 1, tzinfo=UTC))


class RecordingWeb:
    def __init__(self) -> None:
        self.contexts: list[EgressContext] = []

    def search(self, query: str, limit: int, context: EgressContext) -> list[WebResult]:
        self.contexts.append(context)
        return [WebResult("https://example.org/notes", "Public notes", "nothing from the workspace")]

    def fetch(self, url: str, context: EgressContext) -> WebPage:
        self.contexts.append(context)
        return WebPage(url, "Public notes", "nothing from the workspace")


# --- revocations through the directory store ------------------------------------------------------------------


def revocations_for(world: World, user: int, org: int) -> list[tuple[str, Any]]:
    my_groups = {g for (g, u) in world.group_members if u == user and world.groups[g] == org}
    found: list[tuple[str, Any]] = []
    found += [("grant", key) for key in sorted(world.grants) if world.projects[key[0]][0] == org
              and (key[1:] == ("user", user) or (key[1] == "group" and key[2] in my_groups))]
    found += [("group_member", (g, user)) for g in sorted(my_groups)]
    found += [("restrict", p) for p, (p_org, v) in sorted(world.projects.items())
              if p_org == org and v is Visibility.OPEN]
    if (org, user) in world.memberships:
        found.append(("membership", (org, user)))
    if world.active[user]:
        found.append(("deactivate", user))
    return found


def apply_revocation(world: World, directory: PgDirectory, kind: str, key: Any) -> None:
    """One revocation, in the database through the directory store and in the oracle's world alike."""
    if kind == "grant":
        project, holder_kind, holder = key
        [grant] = [g for g in directory.grants(project)
                   if (g.user_id if holder_kind == "user" else g.group_id) == holder]
        directory.delete_grant(grant.id)
        del world.grants[key]
    elif kind == "group_member":
        directory.remove_group_member(*key)
        world.group_members.discard(key)
    elif kind == "restrict":
        project = directory.project(key)
        assert project is not None
        directory.update_project(replace(project, visibility=Visibility.RESTRICTED))
        world.projects[key] = (world.projects[key][0], Visibility.RESTRICTED)
    elif kind == "membership":
        org, user = key
        directory.remove_membership(org, user)
        del world.memberships[key]
        world.group_members -= {(g, u) for (g, u) in world.group_members if u == user and world.groups[g] == org}
        for grant in [k for k in world.grants if k[1:] == ("user", user) and world.projects[k[0]][0] == org]:
            del world.grants[grant]
    else:
        directory.set_active(key, False)
        world.active[key] = False


# --- one asker's run ------------------------------------------------------------------------------------------


def payload_of(output: str) -> dict:
    head, body, tail = output.split("\n")
    assert (head, tail) == ("<tool-data>", "</tool-data>"), output
    return json.loads(body)


def display_ids_in(value: Any) -> list[str]:
    """Every ``display_id`` value anywhere in a tool payload: what it returns as results (and the backlinks
    target it echoes)."""
    if isinstance(value, dict):
        found = [value["display_id"]] if isinstance(value.get("display_id"), str) else []
        return found + [d for v in value.values() for d in display_ids_in(v)]
    if isinstance(value, list):
        return [d for v in value for d in display_ids_in(v)]
    return []


class AskerRun:
    def __init__(self, conn: sa.Connection, world: World, facts: Facts, user: int, org: int, project: int | None,
                 revocation: str | None, pick: int, drastic: bool, embedder: FakeEmbeddingModel) -> None:
        self.conn, self.world, self.facts = conn, world, facts
        self.user, self.org, self.project = user, org, project
        self.revocation, self.pick, self.drastic = revocation, pick, drastic
        self.web = RecordingWeb()
        self.readable_at: dict[int, set[int]] = {}  # tool round -> what the asker read while its tools ran
        self.member_at: dict[int, bool] = {}  # tool round -> whether the asker was an active member then
        self.revoked: tuple[str, Any] | None = None
        self.model = ScriptedReasoningModel(*self.script())
        self.assistant = ChatAssistant(self.model, self.web, embedder, max_tool_rounds=4)
        self.transactions = transactions_on(conn)
        self.initial = self.readable()

    def readable(self) -> set[int]:
        return {r for r, s in self.world.records.items() if s.organisation_id == self.org
                and reads(self.world, self.user, s)}

    def is_member(self) -> bool:
        return self.world.active[self.user] and (self.org, self.user) in self.world.memberships

    def context(self) -> str:
        return (f"user {self.user} in organisation {self.org} (project {self.project}, revocation {self.revoked}); "
                f"world {self.world}; types {self.facts.type}; display IDs {self.facts.display_id}")

    # --- the omniscient model --------------------------------------------------------------------------

    def script(self) -> list:
        rounds = [self.tool_round(1)]
        if self.revocation == "before_more_tools":
            rounds.append(self.tool_round(2, revoke_first=True))
        rounds.append(self.final_answer)
        return rounds

    def tool_round(self, number: int, *, revoke_first: bool = False):
        def respond(_request):
            if revoke_first:
                self.revoke()
            self.readable_at[number] = self.readable()
            self.member_at[number] = self.is_member()
            return step("", *self.everything())
        return respond

    def everything(self) -> list[ToolCall]:
        facts = self.facts
        words = [w for r in sorted(facts.world.records) for w in (title_word(r), body_word(r))]
        calls = [call("search_records", query=f"{title_word(r)} or {body_word(r)}", limit=20, mode=m)
                 for r in sorted(facts.world.records) for m in MODES if m]
        any_word = " or ".join(words)
        for types in ([], *([t] for t in TYPES), TYPES):
            for mode in MODES:
                calls.append(call("search_records", query=any_word, limit=20, types=types,
                                  **({"mode": mode} if mode else {})))
        for statuses in (["active"], ["todo", "done", "proposed"]):
            for mode in ("keyword", "semantic"):
                calls.append(call("search_records", query=any_word, limit=20, statuses=statuses, mode=mode))
        for display_id in facts.all_display_ids:
            calls += [call("get_record", display_id=display_id), call("list_backlinks", display_id=display_id),
                      call("propose_memory_change", operation="retire", display_id=display_id, base_version=1)]
        calls.append(call("web_search", query="release notes"))
        return calls

    def revoke(self) -> None:
        """A revocation that takes away something the asker read, if there is one: a grant, a group membership
        or an open project first; the membership or the account itself when ``drastic`` (or nothing else)."""
        found = revocations_for(self.world, self.user, self.org)
        before = self.readable()
        effective = [c for c in found if self._shrinks(c, before)]
        narrow = [c for c in found if c[0] not in ("membership", "deactivate")]
        choices = effective if self.drastic else [c for c in narrow if c in effective] or narrow
        if not choices:
            return
        self.revoked = choices[self.pick % len(choices)]
        apply_revocation(self.world, PgDirectory(self.conn), *self.revoked)
        STATS["revocations"] += 1

    def _shrinks(self, candidate: tuple[str, Any], before: set[int]) -> bool:
        trial = copy.deepcopy(self.world)
        kind, key = candidate
        if kind == "grant":
            del trial.grants[key]
        elif kind == "group_member":
            trial.group_members.discard(key)
        elif kind == "restrict":
            trial.projects[key] = (trial.projects[key][0], Visibility.RESTRICTED)
        elif kind == "membership":
            del trial.memberships[key]
        else:
            trial.active[key] = False
        return any(not reads(trial, self.user, self.world.records[r]) for r in before)

    def final_answer(self, request):
        if self.revocation == "before_answer":
            self.revoke()
        parroted = [item.output for item in request.input_items if isinstance(item, ToolOutput)]
        return step("\n".join([*parroted, *(m for m, _, _ in self.citation_markers())]))

    def citation_markers(self) -> list[tuple[str, str, str | None]]:
        """(marker, display ID, quote): every display ID in the world, bare, with each record's secret words
        that carries it (in any organisation), and with a fabricated quote."""
        markers = []
        for display_id in self.facts.all_display_ids:
            quotes: list[str | None] = [None, FABRICATED]
            quotes += [w for r, d in sorted(self.facts.display_id.items()) if d == display_id
                       for w in (title_word(r), body_word(r))]
            markers += [(f"[{display_id}]" if q is None else f'[{display_id} "{q}"]', display_id, q) for q in quotes]
        return markers

    # --- the run and its checks ---------------------------------------------------------------------------

    def go(self) -> None:
        asker = Asker(self.user, self.org, reads_as(self.transactions, user_id=self.user, org_id=self.org),
                      self.project)
        written: list[tuple[RunEventKind, dict]] = []  # what the owner's event stream would carry
        events = RunEventLog(lambda batch: written.extend((k, dict(d)) for k, d in batch), schedule=lambda *_: None)
        draft = self.assistant.run(asker, ChatQuestion("Tell me everything."), on_activity=events.activity,
                                   sink=events, on_round_end=events.round_end)
        events.flush()
        STATS["asker_runs"] += 1
        STATS["tool_calls"] += len(draft.tool_activity)
        BY_TOOL.update(a.tool for a in draft.tool_activity)
        returned = self.check_tool_outputs(draft.tool_activity)
        assert set(draft.returned_records) == returned, self.context()
        self.check_stream(written, draft)
        self.check_requests()
        final = self.readable()
        try:
            with asker.reads() as reading:  # as ChatRuns saves the answer: checked as the asker reads now
                answer = verify(reading.workspace, draft)
        except NotFound:
            assert not self.is_member(), self.context()
            STATS["answers_refused"] += 1  # no answer is saved for someone no longer a member
            return
        self.check_citations(answer, returned, final)
        never = {r for r in self.world.records if r not in self.initial}
        leaked = [w for r in never for w in (title_word(r), body_word(r)) if w in answer.text]
        self.tally_leaks(leaked)
        assert not leaked, f"the answer text holds {leaked} for {self.context()}"

    def check_stream(self, written: list[tuple[RunEventKind, dict]], draft) -> None:
        """The stream shows the tool activity as it happened, naming only records the tool returned (checked
        readable above), and the text the model wrote, unchecked: the script's parroted tool outputs hold no
        secret word of a record the asker never read. (Its citation markers quote every record's words, which no
        real model could know; the verified answer drops them, the raw stream shows what the model wrote.)"""
        shown = [(d["round"], d["tool"], d["records"]) for k, d in written if k is RunEventKind.ACTIVITY]
        assert shown == [(a.round, a.tool, list(a.records)) for a in draft.tool_activity], self.context()
        text = "".join(d["text"] for k, d in written if k is RunEventKind.DELTA)
        assert text.split() == draft.text.split(), self.context()  # the stream is the model's text, whole
        for marker, _, _ in self.citation_markers():
            text = text.replace(marker, "")
        never = {r for r in self.world.records if r not in self.initial}
        leaked = [w for r in never for w in (title_word(r), body_word(r)) if w in text]
        self.tally_leaks(leaked)
        assert not leaked, f"the streamed text holds {leaked} for {self.context()}"
        STATS["stream_events"] += len(written)

    def tally_leaks(self, leaked) -> None:
        if leaked:
            STATS["leaks"] += 1

    def check_tool_outputs(self, activity) -> set[str]:
        """Every call's output against what the asker read in its round; returns every display ID returned."""
        items = self.model.requests[-1].input_items
        calls = {i.call_id: i for i in items if isinstance(i, ToolCall)}
        outputs = [(calls[i.call_id], i.output) for i in items if isinstance(i, ToolOutput)]
        assert len(outputs) == len(activity), self.context()
        returned: set[str] = set()
        for (tool_call, output), done in zip(outputs, activity, strict=True):
            readable = self.readable_at[done.round]
            arguments = json.loads(tool_call.arguments_json)
            where = f"{tool_call.name}({arguments}) in round {done.round} for {self.context()}: {output}"
            unreadable = [r for r in self.world.records if r not in readable]
            leaked = [w for r in unreadable for w in (title_word(r), body_word(r)) if w in output]
            self.tally_leaks(leaked)
            assert not leaked, f"secret words {leaked} of unreadable records in {where}"
            payload = payload_of(output)
            named = display_ids_in(payload)
            if tool_call.name == "propose_memory_change":  # its answer (proposal or stale-version error) names it
                named += list(done.records)
            resolved = {d: self.facts.resolve(self.org, d) for d in named}
            assert all(r in readable for r in resolved.values()), f"an unreadable display ID returned by {where}"
            assert set(done.records) <= set(named), where
            returned |= set(done.records)
            self.check_exact(tool_call.name, arguments, payload, done, readable, where)
            STATS["tool_outputs_checked"] += 1
        return returned

    def check_exact(self, tool: str, arguments: dict, payload: dict, done, readable: set[int], where: str) -> None:
        """No readable record missing either: each tool answers exactly what the oracle says."""
        facts, member = self.facts, self.member_at[done.round]
        ids = {facts.display_id[r] for r in readable}
        if tool in ("get_record", "list_backlinks"):
            target = facts.resolve(self.org, arguments["display_id"])
            if target is None or target not in readable:
                want_error = f"{arguments['display_id']} not found" if member else "organisation not found"
                assert payload == {"error": want_error}, where
                return
            if tool == "get_record":
                [record] = payload["records"]
                assert (record["display_id"], record["title"], record["body"]) == (
                    facts.display_id[target], facts.title(target), facts.body(target)), where
            else:
                assert set(done.records) == {facts.display_id[s] for s in facts.backlinks(target) & readable}, where
        elif tool == "search_records":
            if not member:
                assert payload == {"error": "organisation not found"}, where
                return
            assert set(done.records) == self.expected_search(arguments, readable), where
            assert set(done.records) <= ids, where
        elif tool == "propose_memory_change":
            target = facts.resolve(self.org, arguments["display_id"])
            if target is None or target not in readable or facts.type[target] != "memory":
                assert "error" in payload and done.records == (), where
            else:
                assert done.records == (facts.display_id[target],), where

    def expected_search(self, arguments: dict, readable: set[int]) -> set[str]:
        facts = self.facts
        words = set(arguments["query"].split(" or "))
        types, statuses = set(arguments.get("types") or TYPES), set(arguments.get("statuses") or ())

        def passes(r: int) -> bool:
            scope = facts.world.records[r]
            return (facts.type[r] in types and (not statuses or facts.status[r] in statuses)
                    and (self.project is None or (scope.kind is ScopeKind.PROJECT and scope.ref_id == self.project)))

        candidates = {r for r in readable if passes(r)}
        keyword = {r for r in candidates if words & {title_word(r), body_word(r)}}
        semantic = candidates & facts.embedded
        mode = arguments.get("mode") or "hybrid"
        found = keyword if mode == "keyword" else semantic if mode == "semantic" else keyword | semantic
        return {facts.display_id[r] for r in found}

    def check_requests(self) -> None:
        """The ledger is told every record a request carries, and only records the asker could read. What a
        request carries is tool outputs and messages; the model's own tool-call arguments are resent too, and
        this omniscient model writes every secret word into its queries, which is its text, not a record's."""
        allowed = {self.facts.display_id[r] for r in self.initial}
        for request in self.model.requests:
            STATS["requests"] += 1
            text = "\n".join(i.output if isinstance(i, ToolOutput) else getattr(i, "text", "")
                             for i in request.input_items)
            carried = {self.facts.display_id[r] for r in self.world.records
                       if title_word(r) in text or body_word(r) in text}
            named = set(request.record_display_ids)
            assert carried <= named, f"request carries {carried - named} but does not name it, {self.context()}"
            assert named <= allowed, f"request names {named - allowed}, never readable, {self.context()}"
        for context in self.web.contexts:
            STATS["web_calls"] += 1
            assert set(context.record_display_ids) <= allowed, self.context()

    def check_citations(self, answer, returned: set[str], final: set[int]) -> None:
        facts = self.facts
        want: dict[tuple[str, str | None], str | None] = {}  # (display ID, quote) -> drop reason, None: kept
        for _, display_id, quote in self.citation_markers():
            record = facts.resolve(self.org, display_id)
            if display_id not in returned:
                reason = DropReason.NOT_RETURNED_BY_TOOL
            elif record not in final:
                reason = DropReason.NOT_READABLE
            elif quote is not None and normalised(quote) not in normalised(f"{facts.title(record)}\n"
                                                                          f"{facts.body(record)}"):
                reason = DropReason.QUOTE_NOT_FOUND
            else:
                reason = None
            want[(display_id, quote)] = reason
        kept = {(c.display_id, c.quote) for c in answer.citations}
        dropped = {(d.display_id, d.quote): d.reason for d in answer.dropped_citations}
        assert kept == {k for k, reason in want.items() if reason is None}, self.context()
        assert dropped == {k: reason for k, reason in want.items() if reason is not None}, self.context()
        assert {facts.resolve(self.org, d) for d, _ in kept} <= final, self.context()
        STATS["citations"] += len(want)
        STATS["kept"] += len(kept)
        DROPPED.update(str(reason) for reason in dropped.values())
        revoked = {facts.display_id[r] for r in self.initial - final}
        later = [a for a in answer.tool_activity if a.round > 1]
        assert not any(set(a.records) & revoked for a in later), self.context()
        STATS["revoked_not_cited"] += len({d for d, _ in dropped if d in revoked & returned})


# --- the property -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_leak_engine(embedded_postgres, request):
    embedded_postgres.ensure_database("chat_leak")
    engine = create_engine(embedded_postgres.url("chat_leak"), PoolOptions(pool_size=1, max_overflow=0))
    PgSchemaMigrator(engine).upgrade()
    with engine.begin() as conn:
        # ``load`` (shared with the visibility differential) also fills this probe table; unused here.
        conn.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS probe_records (id bigint PRIMARY KEY, organisation_id bigint NOT NULL, "
            "scope_kind text NOT NULL, scope_ref bigint NOT NULL)"
        ))
    space = PgEmbeddingSpaces(engine).record_first("bag-of-words", DIM)
    yield engine, space
    engine.dispose()
    if STATS["worlds"]:
        say(request.config, summary())


def summary() -> str:
    s = STATS
    dropped = ", ".join(f"{reason} {n}" for reason, n in sorted(DROPPED.items())) or "none"
    return (f"chat leak differential: {s['worlds']} worlds, {s['asker_runs']} asker runs, {s['tool_calls']} tool "
            f"calls ({', '.join(f'{t} {n}' for t, n in sorted(BY_TOOL.items()))}), {s['requests']} model requests "
            f"and {s['web_calls']} web calls ledger-checked, {s['citations']} citations checked ({s['kept']} kept; "
            f"dropped: {dropped}), {s['revocations']} revocations mid-run ({s['revoked_not_cited']} revoked records "
            f"dropped not_readable), {s['stream_events']} stream events checked, {s['answers_refused']} answers refused to ex-members, {s['leaks']} leaks")


def askers(world: World):
    """Active members, plain members three times as likely as owners and admins (whose grants change nothing)."""
    members = [(u, o) for (o, u), role in sorted(world.memberships.items()) if world.active[u]
               for _ in range(3 if role is OrgRole.MEMBER else 1)] or sorted((u, o) for (o, u) in world.memberships)
    everyone = sorted((u, o) for u in world.active for o in world.orgs)
    return st.lists(st.sampled_from(members), min_size=1, max_size=2, unique=True) if members else \
        st.lists(st.sampled_from(everyone), min_size=1, max_size=1)


def check_world(engine_and_space, world: World, data) -> None:
    engine, space = engine_and_space
    facts = Facts(world, data)
    chosen = data.draw(askers(world), label="askers")
    if data.draw(st.integers(0, 3), label="outsider") == 0:  # sometimes also a deactivated user or an outsider
        outsiders = sorted((u, o) for u in world.active for o in world.orgs
                           if (o, u) not in world.memberships or not world.active[u])
        if outsiders:
            chosen.append(data.draw(st.sampled_from(outsiders), label="outsider asker"))
    embedder = FakeEmbeddingModel(DIM, "bag-of-words")
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            facts.insert(conn, space)
            for user, org in chosen:
                in_org = [p for p, (p_org, _) in world.projects.items() if p_org == org]
                project = data.draw(st.sampled_from([None, None, *in_org]), label="project")
                revocation = data.draw(st.sampled_from([None, "before_more_tools", "before_answer"]),
                                       label="revocation")
                pick = data.draw(st.integers(0, 99), label="pick")
                drastic = data.draw(st.integers(0, 3), label="drastic") == 0
                with conn.begin_nested() as savepoint:  # each asker starts from the world as drawn
                    own = copy.deepcopy(world)
                    own_facts = copy.copy(facts)
                    own_facts.world = own
                    AskerRun(conn, own, own_facts, user, org, project, revocation, pick, drastic, embedder).go()
                    savepoint.rollback()
            STATS["worlds"] += 1
        finally:
            transaction.rollback()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=worlds(), data=st.data())
def test_chat_never_shows_the_asker_a_record_they_cannot_read(chat_leak_engine, world, data):
    check_world(chat_leak_engine, world, data)


@pytest.mark.nightly
def test_chat_never_shows_the_asker_a_record_they_cannot_read_on_many_worlds(chat_leak_engine, request):
    if not request.config.getoption("--nightly"):
        pytest.skip("nightly run: make nightly")

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(world=worlds(), data=st.data())
    def run(world, data):
        check_world(chat_leak_engine, world, data)

    run()
