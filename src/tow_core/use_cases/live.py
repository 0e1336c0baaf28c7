"""Live updates for one open page (rules in ``tow_core.live``): opening a stream, checking it still may run,
and deciding, at delivery, what one event tells its subscriber.

Each call is one unit of work as the subscriber, with their principal loaded fresh: a session signed out, a
membership removed or a token revoked ends the stream (NotAuthenticated / NotFound); a record they can no
longer read is simply not mentioned (``deliver`` answers None), and its actor is not named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tow_core import knowledge
from tow_core.access import can_write_scope
from tow_core.errors import InvalidInput, NotConfigured
from tow_core.knowledge import Workspace
from tow_core.live import MAX_TOPICS, NUDGE, LiveEvent, LiveHub, LiveKind, LiveMessage, Subscription
from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential, Transactions


@dataclass(frozen=True)
class LiveUseCases:
    transactions: Transactions
    hub: LiveHub | None  # None: this server holds no live streams (tests of other things)

    def subscribe(self, credential: Credential, org_id: int, records: Sequence[str | DisplayId],
                  deliver: Callable[[LiveEvent], None], end: Callable[[], None]) -> Callable[[], None]:
        """Joins this process's hub for ``records`` (display IDs, each one the caller reads, else NotFound) and
        their own nudges; returns how to leave (``end``: the server is shutting down, the stream must end).
        Throttled when the process serves its maximum of streams; DependencyUnavailable while it shuts down."""
        if len(records) > MAX_TOPICS:
            raise InvalidInput(f"follow at most {MAX_TOPICS} records in one stream", field="record")
        refs = [_display_id(ref) for ref in records]
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            followed = {record.id: record.display_id for record in (knowledge.get_record(ws, ref) for ref in refs)}
            subscription = Subscription(acting.principal.user_id, org_id, followed)
        if self.hub is None:
            raise NotConfigured("live updates are not available on this server")
        return self.hub.join(subscription, deliver, end)

    def check(self, credential: Credential, org_id: int) -> None:
        """Raises unless the caller is still signed in and a member (each heartbeat asks)."""
        with self.transactions.acting_as(credential) as acting:
            acting.workspace(org_id)

    def deliver(self, credential: Credential, org_id: int, event: LiveEvent) -> LiveMessage | None:
        """What ``event`` tells the caller now, or None when it is nothing they may know of."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            if event.kind is LiveKind.USER_NUDGED:
                return NUDGE if event.user_id == ws.principal.user_id else None
            if event.kind is LiveKind.REVIEWS_CHANGED:
                return NUDGE if event.scope is not None and _reviews(ws, event) else None
            return _record_message(ws, event)


def _display_id(ref: str | DisplayId) -> DisplayId:
    if isinstance(ref, DisplayId):
        return ref
    try:
        return DisplayId.parse(ref)
    except InvalidInput as exc:
        raise InvalidInput(str(exc), field="record") from exc


def _reviews(ws: Workspace, event: LiveEvent) -> bool:
    scope = event.scope
    assert scope is not None
    return scope.organisation_id == ws.org_id and can_write_scope(ws.principal, scope,
                                                                  knowledge.project_access_of(ws, scope))


def _record_message(ws: Workspace, event: LiveEvent) -> LiveMessage | None:
    if event.record_id is None or event.actor_id == ws.principal.user_id:
        return None
    record = ws.records.readable(ws.principal.user_id, ws.org_id, event.record_id)
    if record is None:  # not (or no longer) readable: nothing about it, not even who changed it
        return None
    actor = ws.directory.user(event.actor_id) if event.actor_id is not None else None
    data: dict[str, object] = {"record": str(record.display_id), "version": record.version,
                               "by": actor.display_name if actor is not None else None}
    if event.kind is LiveKind.COMMENT_ADDED:
        data["comment_id"] = event.comment_id
    return LiveMessage(event.kind.value, data)

