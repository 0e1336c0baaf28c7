"""The inbox as JSON and as the pages show it: one item per thing that waits, with where it is handled."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from tow_core.inbox import Inbox, InboxCounts, InboxKind, action_title
from tow_core.memory_review import DiffSummary

RULES = (
    "What waits for you in this organisation (or, with `project=KEY`, in one project you read): pending memory "
    "diffs in scopes you can write (you may review them), snapshots in `pending_review` you can write (you may "
    "edit and activate them), actions the assistant proposed in your own conversations that nobody applied, and "
    "your failed agent runs (with their error code and message) until you dismiss them. Everything is filtered "
    "by the same access rules as every other path: an item you cannot read is neither listed nor counted, and a "
    "revoked grant counts from the very next request. Other people's conversations and runs never appear, "
    "whatever your role. Counts are exact; each kind lists its newest 100 items."
)


class InboxCountsOut(msgspec.Struct):
    memory_diffs: int
    snapshots: int
    chat_actions: int
    failed_runs: int
    total: int


class InboxItemOut(msgspec.Struct):
    kind: Annotated[str, msgspec.Meta(description="memory_diff, snapshot, chat_action or failed_run")]
    id: Annotated[str, msgspec.Meta(description="the item's own id: a diff id, a display ID, an action id or a run id")]
    title: str
    about: Annotated[str, msgspec.Meta(description="a diff's rationale, a snapshot's type, the conversation's "
                                                    "title, or a failed run's error message")]
    created_at: datetime
    link: Annotated[str, msgspec.Meta(description="the page where the item is handled")]
    act: Annotated[str, msgspec.Meta(
        description="the API call that handles it: approve (or `.../reject`) a diff, activate a snapshot (PATCH "
        "with `status: active` and its `version`), apply an action, dismiss a run")]
    diff_id: int | None = None
    display_id: str | None = None
    version: Annotated[int | None, msgspec.Meta(description="a snapshot's version, to send when activating")] = None
    conversation_id: int | None = None
    action_id: str | None = None
    run_id: int | None = None
    error_code: str | None = None
    source: Annotated[str | None, msgspec.Meta(
        description="a diff's source: doc, chat, check_in or manual")] = None
    source_id: Annotated[str | None, msgspec.Meta(description="a diff's source record, e.g. DOC-7")] = None
    author_id: Annotated[int | None, msgspec.Meta(description="who proposed a diff (a run's owner)")] = None
    agent_run_id: Annotated[int | None, msgspec.Meta(
        description="the agent run that proposed a diff (a memory extraction), if one did")] = None
    awaiting_second_reviewer: Annotated[bool, msgspec.Meta(
        description="a diff you proposed (or a run of yours did) while the organisation requires a second "
        "reviewer: someone else must approve it; you may reject it")] = False


class InboxOut(msgspec.Struct):
    counts: InboxCountsOut
    items: list[InboxItemOut]


def counts_out(counts: InboxCounts) -> InboxCountsOut:
    return InboxCountsOut(counts.memory_diffs, counts.snapshots, counts.chat_actions, counts.failed_runs,
                          counts.total)


def items_out(org_id: int, box: Inbox) -> list[InboxItemOut]:
    """Diffs, then snapshots, then chat actions, then failed runs; each kind newest first."""
    api, pages = f"/api/organisations/{org_id}", f"/o/{org_id}"
    items = [InboxItemOut(InboxKind.MEMORY_DIFF.value, str(d.id), f"Memory diff #{d.id} ({d.operation_count} "
                          f"change{'s' if d.operation_count != 1 else ''}{_from(d)})", d.rationale, d.created_at,
                          f"{pages}/memory-diffs/{d.id}", f"POST {api}/memory-diffs/{d.id}/approve", diff_id=d.id,
                          source=d.source.value, source_id=str(d.source_id) if d.source_id else None,
                          author_id=d.author_id, agent_run_id=d.agent_run_id,
                          awaiting_second_reviewer=d.id in box.awaiting_second_reviewer)
             for d in box.memory_diffs]
    items += [InboxItemOut(InboxKind.SNAPSHOT.value, str(s.display_id), f"{s.display_id} {s.title}",
                           str(s.fields.get("snapshot_type", "")).replace("_", " "), s.updated_at,
                           f"{pages}/r/{s.display_id}", f"PATCH {api}/records/{s.display_id}",
                           display_id=str(s.display_id), version=s.version)
              for s in box.snapshots]
    items += [InboxItemOut(InboxKind.CHAT_ACTION.value, str(a.action.get("id")), action_title(a.action),
                           a.conversation.title, a.answered_at, f"{pages}/chat/{a.conversation.id}",
                           f"POST {api}/conversations/{a.conversation.id}/actions/{a.action.get('id')}/apply",
                           conversation_id=a.conversation.id, action_id=str(a.action.get("id")))
              for a in box.chat_actions]
    items += [InboxItemOut(InboxKind.FAILED_RUN.value, str(r.id), f"Failed {r.kind} run #{r.id}", r.error or "",
                           r.finished_at or r.created_at, _run_link(pages, r.input, r.id),
                           f"POST {api}/inbox/runs/{r.id}/dismiss", run_id=r.id, error_code=r.error_code)
              for r in box.failed_runs]
    return items


def _from(diff: DiffSummary) -> str:
    """Where a diff comes from, for its title: " from DOC-7", " from a chat answer" ..."""
    if diff.source_id is not None:
        return f" from {diff.source_id}"
    return {"chat": " from a chat answer", "check_in": " from a check-in"}.get(diff.source.value, "")


def _run_link(pages: str, run_input: object, run_id: int) -> str:
    """A chat run is handled in its conversation; any other run in the inbox itself."""
    conversation = run_input.get("conversation_id") if isinstance(run_input, dict) else None
    return f"{pages}/chat/{conversation}" if isinstance(conversation, int) else f"{pages}/inbox#run-{run_id}"


def inbox_out(org_id: int, box: Inbox) -> InboxOut:
    return InboxOut(counts_out(box.counts), items_out(org_id, box))
