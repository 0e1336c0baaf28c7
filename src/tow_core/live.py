"""Live updates (issue 19 item 3, SPEC §13): a page open in a browser learns that its record changed, that
a comment was added, or that its user's inbox count moved — without reloading.

Rules:
- **Published in the unit of work** that made the change (``LiveEvents.publish``): sent when it commits,
  never for a change rolled back. Every record update goes through ``knowledge.update_record``'s history
  hook (``tow_core.record_history``), so a doc, ticket, decision or risk saved through any front door
  publishes ``record_changed``; ticket comments publish ``comment_added``; a memory diff proposed or
  decided, and a snapshot entering or leaving review, publish ``reviews_changed`` for its scope; a chat answer
  proposing an action, and (after it is recorded) a failed agent run, ``user_nudged`` for its owner.
- **Ids only** in an event (``LiveEvent.payload``): no titles, bodies or names, since other processes' logs
  and any database session listening on the channel may see it.
- **Access at delivery.** ``concerns`` only routes an event to the subscriptions it may be about; whether a
  subscriber is told anything is decided when it is delivered, in a unit of work of the subscriber's own
  (``tow_core.use_cases.live``): a record event only while they can read the record (a revoked grant stops
  the events at once, and the actor is named only then), ``user_nudged`` only to that user,
  ``reviews_changed`` only to those who write the scope (its reviewers, ``tow_core.inbox``). The actor is
  never told of their own change.
- **Bounded fan-out.** Each process holds one listening connection and hands each event to its own
  subscribers in memory (``LiveHub``); at most ``max_subscribers`` at once, beyond them ``Throttled``.
- **Streams end with the server.** A stream never finishes by itself, so a server shutting down would wait for
  it until its grace period runs out: closing the hub (when shutdown begins) tells every stream to end, and
  refuses new ones (``DependencyUnavailable``: a browser retries, reaching another process) until it is opened
  again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from tow_core.access import Scope, ScopeKind
from tow_core.errors import DependencyUnavailable, Throttled
from tow_core.records import DisplayId

MAX_TOPICS = 20  # records one stream follows (a page shows one; a board a few)


class LiveKind(StrEnum):
    RECORD_CHANGED = "record_changed"
    COMMENT_ADDED = "comment_added"
    USER_NUDGED = "user_nudged"  # the user's counts changed (their inbox, later their notifications)
    REVIEWS_CHANGED = "reviews_changed"  # something entered or left review in a scope: its reviewers' counts


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: LiveKind
    org_id: int
    record_id: int | None = None
    actor_id: int | None = None
    comment_id: int | None = None
    user_id: int | None = None
    scope: Scope | None = None

    @classmethod
    def record_changed(cls, org_id: int, record_id: int, by_user_id: int | None) -> LiveEvent:
        return cls(LiveKind.RECORD_CHANGED, org_id, record_id=record_id, actor_id=by_user_id)

    @classmethod
    def comment_added(cls, org_id: int, record_id: int, comment_id: int, by_user_id: int) -> LiveEvent:
        return cls(LiveKind.COMMENT_ADDED, org_id, record_id=record_id, comment_id=comment_id, actor_id=by_user_id)

    @classmethod
    def user_nudged(cls, org_id: int, user_id: int) -> LiveEvent:
        return cls(LiveKind.USER_NUDGED, org_id, user_id=user_id)

    @classmethod
    def reviews_changed(cls, scope: Scope) -> LiveEvent:
        return cls(LiveKind.REVIEWS_CHANGED, scope.organisation_id, scope=scope)

    def payload(self) -> str:
        """The event as a small JSON object of ids (PostgreSQL NOTIFY payloads stay far below 8000 bytes)."""
        ids: dict[str, Any] = {"k": self.kind.value, "o": self.org_id}
        for key, value in (("r", self.record_id), ("a", self.actor_id), ("c", self.comment_id),
                           ("u", self.user_id)):
            if value is not None:
                ids[key] = value
        if self.scope is not None:
            ids["s"] = [self.scope.kind.value, self.scope.ref_id]
        return json.dumps(ids, separators=(",", ":"))

    @classmethod
    def from_payload(cls, text: str) -> LiveEvent:
        """The event ``payload`` gave; ValueError for anything else (a stranger's NOTIFY on the channel)."""
        try:
            ids = json.loads(text)
            org_id = _id(ids["o"])
            scope = None
            if "s" in ids:
                kind, ref = ids["s"]
                scope = Scope(ScopeKind(kind), org_id, _id(ref))
            return cls(LiveKind(ids["k"]), org_id, record_id=_optional_id(ids.get("r")),
                       actor_id=_optional_id(ids.get("a")), comment_id=_optional_id(ids.get("c")),
                       user_id=_optional_id(ids.get("u")), scope=scope)
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a live event: {text[:80]!r}") from exc


def _id(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"not an id: {value!r}")
    return value


def _optional_id(value: object) -> int | None:
    return None if value is None else _id(value)


class LiveEvents(Protocol):
    """Live events queued in the unit of work: sent when it commits, dropped when it rolls back."""

    def publish(self, event: LiveEvent) -> None: ...

    def publish_all(self, events: Sequence[LiveEvent]) -> None:
        """``publish`` each of ``events``, in one statement (the nudges of everyone one change notified)."""
        ...


class LiveFeed(Protocol):
    """Where a process hears every committed event, from whichever process published it (one listening
    connection per process); ``start`` returns once it listens, so no event after it is missed."""

    def start(self, on_event: Callable[[LiveEvent], None]) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Subscription:
    """One open stream: whose, in which organisation, following which records (id → display ID, each
    readable when the stream opened; readability is checked again at every delivery)."""

    user_id: int
    org_id: int
    records: Mapping[int, DisplayId]


def concerns(subscription: Subscription, event: LiveEvent) -> bool:
    """Whether ``event`` may be for this subscription — routing only; access is decided at delivery."""
    if event.org_id != subscription.org_id:
        return False
    if event.kind is LiveKind.USER_NUDGED:
        return event.user_id == subscription.user_id
    if event.kind is LiveKind.REVIEWS_CHANGED:
        return True
    return event.record_id in subscription.records and event.actor_id != subscription.user_id


@dataclass(frozen=True, slots=True)
class LiveMessage:
    """What a subscriber is told: ``record_changed`` / ``comment_added`` ``{record, by, ...}`` or ``nudge``."""

    kind: str
    data: Mapping[str, Any]


NUDGE = LiveMessage("nudge", {})


@dataclass(frozen=True, slots=True)
class _Subscriber:
    subscription: Subscription
    deliver: Callable[[LiveEvent], None]
    end: Callable[[], None]


class LiveHub:
    """This process's subscribers and the fan-out to them. ``deliver`` and ``end`` callbacks run on the feed's
    thread (or the one closing the hub) and must only hand on (to an asyncio queue): access is checked by the
    subscriber's own stream."""

    def __init__(self, feed: LiveFeed, *, max_subscribers: int) -> None:
        self._feed = feed
        self._max = max_subscribers
        self._lock = threading.Lock()
        self._subscribers: dict[int, _Subscriber] = {}
        self._next = 0
        self._started = False
        self._closed = False

    def join(self, subscription: Subscription, deliver: Callable[[LiveEvent], None],
             end: Callable[[], None]) -> Callable[[], None]:
        """Adds a subscriber and returns how it leaves; ``end`` is called if the hub closes first (the server
        shuts down). Throttled when the process has ``max_subscribers``; DependencyUnavailable once closed."""
        with self._lock:
            if self._closed:
                raise DependencyUnavailable("this server is shutting down; try again in a moment",
                                            retry_after_seconds=5)
            if len(self._subscribers) >= self._max:
                raise Throttled("too many live streams on this server; try again later", retry_after_seconds=30)
            if not self._started:
                self._feed.start(self.dispatch)  # the first subscriber opens the one listening connection
                self._started = True
            self._next += 1
            key = self._next
            self._subscribers[key] = _Subscriber(subscription, deliver, end)
        return lambda: self._leave(key)

    def _leave(self, key: int) -> None:
        with self._lock:
            self._subscribers.pop(key, None)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def dispatch(self, event: LiveEvent) -> None:
        with self._lock:
            targets = [s.deliver for s in self._subscribers.values() if concerns(s.subscription, event)]
        for deliver in targets:
            deliver(event)

    def open(self) -> None:
        """Takes streams again after ``close`` (an app started anew); a new hub is open."""
        with self._lock:
            self._closed = False

    def close(self) -> None:
        """Ends every stream, refuses new ones and stops listening: the server is shutting down."""
        with self._lock:
            started, self._started, self._closed = self._started, False, True
            ending = [s.end for s in self._subscribers.values()]
            self._subscribers.clear()
        for end in ending:
            end()
        if started:
            self._feed.stop()
