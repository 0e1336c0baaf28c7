"""PgConversations: conversations and their turns in PostgreSQL (migration 0015), on the caller's connection.

Every read of a conversation names its owner in the WHERE clause: there is no query here that returns
another person's conversation (``tow_core.conversations``: only the owner reads one).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore
from tow_core.conversations import (
    Conversation,
    JsonObject,
    NewConversation,
    NewTurn,
    OpenAction,
    Turn,
    TurnRole,
    checked_tool_activity,
)
from tow_core.errors import InvalidInput, NotFound
from tow_core.records import Page

_CONVERSATION = ("c.id, c.owner_id, c.organisation_id, c.project_id, c.title, c.memory_extraction, c.created_at, "
                 "c.updated_at")
_TURN = ("t.id, t.conversation_id, t.position, t.role, t.text, t.tool_activity, t.citations, t.dropped_citations, "
         "t.web_sources, t.agent_run_id, t.created_at")

# Pending actions nobody applied, in the owner's conversations of the scopes asked for. The jsonb_path_exists
# condition is the predicate of the partial index conversation_turns_open_actions (migration 0021_inbox), so
# only turns that hold such an action are read.
_OPEN_PATH = "'$[*].pending_action ? (@.applied == null)'"
_OPEN_ACTIONS = (
    "FROM conversations c JOIN conversation_turns t ON t.conversation_id = c.id "
    f"CROSS JOIN LATERAL jsonb_path_query(t.tool_activity, {_OPEN_PATH}) WITH ORDINALITY AS a(action, n) "
    f"WHERE c.owner_id = :owner AND c.organisation_id = :org AND jsonb_path_exists(t.tool_activity, {_OPEN_PATH}) "
    "AND t.role = 'assistant' AND jsonb_typeof(a.action) = 'object' "
    "AND ((c.project_id IS NULL AND :unscoped) OR c.project_id = ANY(CAST(:projects AS bigint[])))"
)


def _conversation(row: sa.Row) -> Conversation:
    return Conversation(*row)


def _turn(row: sa.Row) -> Turn:
    id_, conversation, position, role, text, tools, citations, dropped, web, run, created = row
    return Turn(id_, conversation, position, TurnRole(role), text, tuple(tools), tuple(citations), tuple(dropped),
                tuple(web), run, created)


# --- cursors: [updated_at, id], opaque to clients ---------------------------------------------------


def _encode_cursor(conversation: Conversation) -> str:
    key = [conversation.updated_at.isoformat(), conversation.id]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        at, id_ = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        updated = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise _bad_cursor() from exc
    if type(id_) is not int or updated.tzinfo is None:
        raise _bad_cursor()
    return updated, id_


def _bad_cursor() -> InvalidInput:
    return InvalidInput("cursor is not one this server issued; start again without it", field="cursor")


class PgConversations(SqlStore):

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """A savepoint around one write: a refused write leaves the caller's transaction usable and arrives
        as a core error."""
        try:
            with self._conn.begin_nested():
                yield
        except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
            raise InvalidInput(f"{what} is not valid: {exc.orig.diag.message_primary}") from exc

    def create(self, new: NewConversation, *, at: datetime) -> Conversation:
        with self._writing("conversation"):
            row = self._row(
                "INSERT INTO conversations AS c (organisation_id, owner_id, project_id, title, memory_extraction, "
                f"created_at, updated_at) VALUES (:org, :owner, :project, :title, :memory, :at, :at) "
                f"RETURNING {_CONVERSATION}",
                org=new.organisation_id, owner=new.owner_id, project=new.project_id, title=new.title,
                memory=new.memory_extraction, at=at,
            )
        return _conversation(row)

    def owned(self, owner_id: int, org_id: int, conversation_id: int) -> Conversation | None:
        row = self._row(
            f"SELECT {_CONVERSATION} FROM conversations c WHERE c.id = :id AND c.owner_id = :owner "
            "AND c.organisation_id = :org", id=conversation_id, owner=owner_id, org=org_id)
        return _conversation(row) if row else None

    def list_owned(self, owner_id: int, org_id: int, project_ids: frozenset[int], *, cursor: str | None,
                   limit: int) -> Page[Conversation]:
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        params: dict[str, object] = {"owner": owner_id, "org": org_id, "projects": sorted(project_ids),
                                     "fetch": limit + 1}
        after = ""
        if cursor is not None:
            params["after_at"], params["after_id"] = _decode_cursor(cursor)
            after = " AND (c.updated_at, c.id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS bigint))"
        rows = self._rows(
            f"SELECT {_CONVERSATION} FROM conversations c WHERE c.owner_id = :owner AND c.organisation_id = :org "
            "AND (c.project_id IS NULL OR c.project_id = ANY(CAST(:projects AS bigint[])))"
            f"{after} ORDER BY c.updated_at DESC, c.id DESC LIMIT :fetch", **params)
        items = tuple(_conversation(r) for r in rows[:limit])
        return Page(items, _encode_cursor(items[-1]) if len(rows) > limit else None)

    def add_turn(self, conversation_id: int, turn: NewTurn, *, at: datetime) -> Turn:
        checked = turn.checked()
        # The UPDATE locks the conversation's row: a concurrent append waits, then numbers after this one.
        touched = self._row("UPDATE conversations SET updated_at = GREATEST(updated_at, :at) WHERE id = :id "
                            "RETURNING id", id=conversation_id, at=at)
        if touched is None:
            raise NotFound("conversation not found")
        with self._writing("turn"):
            row = self._row(
                "INSERT INTO conversation_turns AS t (conversation_id, position, role, text, tool_activity, citations, "
                "dropped_citations, web_sources, agent_run_id, created_at) "
                "SELECT :id, COALESCE(MAX(position), 0) + 1, :role, :text, CAST(:tools AS jsonb), "
                "CAST(:citations AS jsonb), CAST(:dropped AS jsonb), CAST(:web AS jsonb), :run, :at "
                f"FROM conversation_turns WHERE conversation_id = :id RETURNING {_TURN}",
                id=conversation_id, role=checked.role.value, text=checked.text,
                tools=json.dumps(list(checked.tool_activity)), citations=json.dumps(list(checked.citations)),
                dropped=json.dumps(list(checked.dropped_citations)), web=json.dumps(list(checked.web_sources)),
                run=checked.agent_run_id, at=at,
            )
        return _turn(row)

    def turns(self, conversation_id: int) -> tuple[Turn, ...]:
        return tuple(_turn(r) for r in self._rows(
            f"SELECT {_TURN} FROM conversation_turns t WHERE t.conversation_id = :id ORDER BY t.position",
            id=conversation_id))

    def turn_for_update(self, conversation_id: int, turn_id: int) -> Turn | None:
        row = self._row(f"SELECT {_TURN} FROM conversation_turns t WHERE t.id = :turn AND t.conversation_id = :id "
                        "FOR UPDATE", id=conversation_id, turn=turn_id)
        return _turn(row) if row else None

    def set_tool_activity(self, turn_id: int, tool_activity: Sequence[JsonObject]) -> Turn:
        activity = checked_tool_activity(tool_activity)
        row = self._row(f"UPDATE conversation_turns AS t SET tool_activity = CAST(:tools AS jsonb) WHERE t.id = :id "
                        f"RETURNING {_TURN}", id=turn_id, tools=json.dumps(list(activity)))
        if row is None:
            raise NotFound("turn not found")
        return _turn(row)

    def open_actions(self, owner_id: int, org_id: int, project_ids: frozenset[int], *, unscoped: bool,
                     limit: int) -> list[OpenAction]:
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        rows = self._rows(
            f"SELECT {_CONVERSATION}, t.id, t.created_at, a.action {_OPEN_ACTIONS} "
            "ORDER BY t.created_at DESC, t.id DESC, a.n LIMIT :limit",
            owner=owner_id, org=org_id, projects=sorted(project_ids), unscoped=unscoped, limit=limit)
        return [OpenAction(_conversation(r[:-3]), r[-3], dict(r[-1]), r[-2]) for r in rows]

    def count_open_actions(self, owner_id: int, org_id: int, project_ids: frozenset[int], *,
                           unscoped: bool) -> int:
        row = self._row(f"SELECT count(*) {_OPEN_ACTIONS}", owner=owner_id, org=org_id,
                        projects=sorted(project_ids), unscoped=unscoped)
        return row[0]

    def update(self, conversation_id: int, *, title: str, memory_extraction: bool, at: datetime) -> Conversation:
        with self._writing("conversation"):
            row = self._row(
                "UPDATE conversations AS c SET title = :title, memory_extraction = :memory, "
                f"updated_at = GREATEST(c.updated_at, :at) WHERE c.id = :id RETURNING {_CONVERSATION}",
                id=conversation_id, title=title, memory=memory_extraction, at=at)
        if row is None:
            raise NotFound("conversation not found")
        return _conversation(row)

    def delete(self, conversation_id: int) -> bool:
        self._delete_run_events([conversation_id])
        return self._conn.execute(sa.text("DELETE FROM conversations WHERE id = :id"),
                                  {"id": conversation_id}).rowcount > 0

    def purge_idle(self, *, last_activity_before: datetime, limit: int) -> int:
        ids = list(self._conn.execute(sa.text(
            "SELECT id FROM conversations WHERE updated_at < :before ORDER BY updated_at LIMIT :limit "
            "FOR UPDATE SKIP LOCKED"), {"before": last_activity_before, "limit": limit}).scalars())
        if not ids:
            return 0
        self._delete_run_events(ids)
        return self._conn.execute(sa.text("DELETE FROM conversations WHERE id = ANY(:ids)"), {"ids": ids}).rowcount

    def _delete_run_events(self, conversation_ids: list[int]) -> None:
        """The live events of the runs the conversations' turns name carry their text: they go with them."""
        self._conn.execute(sa.text(
            "DELETE FROM agent_run_events WHERE run_id IN (SELECT agent_run_id FROM conversation_turns "
            "WHERE conversation_id = ANY(:ids) AND agent_run_id IS NOT NULL)"), {"ids": conversation_ids})
