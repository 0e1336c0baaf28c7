"""Generated snapshots over HTTP (issue 14 item 2, SPEC §6 workflow 3): ask for a draft, read its sources.

A generated snapshot is an ordinary snapshot record (``/records/{display_id}``: read, edit, activate); these
routes start one and show what it rests on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED

from tow_core.records import SNAPSHOT_TYPES, DisplayId, Record
from tow_core.snapshots import GATHERED, MAX_RECORD_CHARS
from tow_core.unit_of_work import Credential
from tow_core.use_cases.agent_runs import VisibleAgentRun
from tow_core.use_cases.snapshots import SnapshotUseCases
from tow_http.ai.agent_runs_api import AgentRunOut, agent_run_out
from tow_http.shapes import ScopeOut, Strict, Title, scope_out

BASE = "/organisations/{org_id:int}/snapshots"

SnapshotType = Literal[SNAPSHOT_TYPES]  # type: ignore[valid-type]
_NAMES = {"memory": "memory items", "doc": "docs", "ticket": "tickets", "decision": "decisions", "risk": "risks"}
_BOUNDS = ", ".join(f"{limit} {_NAMES[t.value]} ({'/'.join(sorted(s))})" for t, (s, limit) in GATHERED.items())

RULES = f"""
How a draft is made: the run acts as you, with your access loaded fresh, and gathers what you may read in \
the scope you asked for (one project, or all projects) — newest first, at most {_BOUNDS}, each body cut at \
{MAX_RECORD_CHARS} characters. They are sent as quoted data in one request to the reasoning model (store=false; \
the egress ledger row names exactly those records), which writes Markdown citing display IDs ([DOC-7], \
[DOC-7 "exact words"]). When the draft is saved the server keeps a citation only if its record was sent, you can \
still read it then, and it contains the quoted words; the others are taken out of the text and listed in the \
run's output (`dropped_citations`, with the reason `not_sent`, `not_readable` or `quote_not_found`). The kept \
citations are the snapshot's sources, pinned to the version that was sent.

Scope: the snapshot is no wider than the narrowest of its sources. Private to you ⊂ a project or a group ⊂ \
the organisation; two different projects, two groups, or a project and a group cannot be compared, so sources \
in two of them make the snapshot private to you (the rule that never widens). Asking for a project keeps it to \
that project at most; one you cannot write (a viewer) makes it private to you. While generating, and when \
generation fails, it is private to you.
"""


class SnapshotOut(msgspec.Struct):
    """The snapshot record in brief; `GET .../records/{display_id}` has all of it."""

    id: int
    display_id: str
    snapshot_type: str
    title: str
    status: Annotated[str, msgspec.Meta(description="generating, pending_review, active, superseded or failed")]
    scope: ScopeOut
    version: int
    updated_at: datetime
    generated_by: Annotated[str | None, msgspec.Meta(description="`agent_run:{id}` for a generated snapshot")]


def snapshot_out(record: Record) -> SnapshotOut:
    return SnapshotOut(record.id, str(record.display_id), record.fields.get("snapshot_type", ""), record.title,
                       record.status, scope_out(record.scope), record.version, record.updated_at,
                       record.fields.get("generated_by"))


class GenerateIn(Strict):
    snapshot_type: Annotated[SnapshotType, msgspec.Meta(description="which kind of snapshot to draft")]
    title: Title | None = None
    project_key: Annotated[str, msgspec.Meta(
        max_length=10, description="a project you read: draft from that project's records only; absent: "
        "all projects you read")] | None = None


class GenerationOut(msgspec.Struct):
    snapshot: Annotated[SnapshotOut, msgspec.Meta(
        description="the snapshot, `generating` and private to you until the run ends")]
    run: Annotated[AgentRunOut, msgspec.Meta(description="the agent run (kind `snapshot_generation`) writing it")]


class SourceOut(msgspec.Struct):
    display_id: str
    title: str
    pinned_version: Annotated[int, msgspec.Meta(description="the version the draft was written from")]
    current_version: int
    changed: Annotated[bool, msgspec.Meta(description="the record has changed since the draft was written")]


class ProvenanceOut(msgspec.Struct):
    snapshot: SnapshotOut
    sources: Annotated[list[SourceOut], msgspec.Meta(description="the cited records you can read now")]
    sources_changed_since: Annotated[list[str], msgspec.Meta(
        description="display IDs of sources you can read that changed since the draft was written")]
    unreadable_sources: Annotated[int, msgspec.Meta(
        description="sources you cannot read (or that are gone): counted, never named")]
    unreadable_sources_changed: Annotated[int, msgspec.Meta(
        description="of those, how many changed since (a gone record counts as changed)")]
    run: Annotated[AgentRunOut | None, msgspec.Meta(
        description="the run that generated it, as you may see it; null for a snapshot a person wrote")]


@post(BASE + "/generate", summary="Generate a snapshot draft",
      description="Creates a snapshot of `snapshot_type` in `generating` (private to you) and queues an agent "
      "run (kind `snapshot_generation`) that writes its draft; 202 with both. When the run completes the "
      "snapshot is `pending_review` in the scope its sources allow, for a person to edit and activate as any "
      "snapshot (`PATCH .../records/{display_id}`); when it fails it is `failed`, with the reason as its text. "
      "Follow the run at `GET .../agent-runs/{id}` or the snapshot at `GET .../snapshots/{display_id}/sources`. "
      "404 for a project you cannot read; 503 `ai_not_configured` without OPENAI_API_KEY (nothing is saved).\n"
      + RULES, status_code=HTTP_202_ACCEPTED, sync_to_thread=True)
def generate_snapshot(org_id: int, data: JSONBody[GenerateIn], caller: NamedDependency[Credential],
                      snapshots: NamedDependency[SnapshotUseCases]) -> GenerationOut:
    started = snapshots.generate(caller, org_id, snapshot_type=data.snapshot_type, title=data.title,
                                 project_key=data.project_key)
    return GenerationOut(snapshot_out(started.snapshot), agent_run_out(VisibleAgentRun(started.run, True)))


@get(BASE + "/{display_id:str}/sources", summary="A snapshot's sources, and which changed since",
     description="The records a generated snapshot cites, each with the version its draft was written from and "
     "the current one. `sources_changed_since` lists the ones you can read that have a newer version; a changed "
     "source you cannot read is counted, not named. With the run that generated it (its input, output and error "
     "only if it is yours). 404 unless you can read the snapshot. Works without AI configured.\n" + RULES,
     sync_to_thread=True)
def snapshot_sources(org_id: int, display_id: str, caller: NamedDependency[Credential],
                     snapshots: NamedDependency[SnapshotUseCases]) -> ProvenanceOut:
    record, found = snapshots.provenance(caller, org_id, DisplayId.parse(display_id))
    run = agent_run_out(VisibleAgentRun(found.run, found.run_content_visible)) if found.run else None
    return ProvenanceOut(
        snapshot_out(record),
        [SourceOut(s.display_id, s.title, s.pinned_version, s.current_version, s.changed) for s in found.sources],
        list(found.changed), found.unreadable, found.changed_unreadable, run)


snapshots_router = Router(path="/api", route_handlers=[generate_snapshot, snapshot_sources], tags=["snapshots"])
