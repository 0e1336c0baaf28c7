"""``GET /api/organisations/{org}/live``: one open page's live updates as server-sent events (``tow_core.live``).

The stream holds no transaction: it waits on an in-memory queue this process's hub fills from its one listening
connection, and each event is decided in a short unit of work as the subscriber (``LiveUseCases.deliver``). When
the hub closes (the server shuts down) the stream ends at once, rather than holding the shutdown (serving.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import msgspec
from litestar import Router, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.utils.sync import sync_to_thread

from tow_core.errors import RetryableError, TowError
from tow_core.live import MAX_TOPICS, LiveEvent, LiveMessage
from tow_core.unit_of_work import Credential
from tow_core.use_cases.live import LiveUseCases
from tow_http.config import Settings

QUEUED_PER_STREAM = 64  # events waiting for one slow stream; beyond them it gets `resync` instead
RESYNC = LiveMessage("resync", {})


class _Closing:
    """Queued when the hub closes: the stream ends (its client reconnects, to another process if there is one)."""


CLOSING = _Closing()
Queued = LiveEvent | _Closing | None  # None: events were dropped (the stream answers ``resync``)

LIVE_PROTOCOL = f"""Live updates for the page you have open, as server-sent events (`text/event-stream`; in a
browser, `EventSource`). Name the records the page shows with `record` (display IDs, up to {MAX_TOPICS}; each must
be one you read, else 404). The stream first sends `ready` `{{}}` (it listens from then on), then:

- `record_changed` `{{record, version, by}}` — someone else saved one of your records (any field: title, body,
  status, assignee ...); `by` is their display name. Reload to see it;
- `comment_added` `{{record, comment_id, by}}` — someone else added or edited a comment on it (a page fetches that
  one comment, as you read it, from `GET .../records/{{record}}/comments?after=...` or, as the ticket page's HTML,
  `GET /o/{{org}}/r/{{record}}/comments/{{comment_id}}`);
- `nudge` `{{}}` — your inbox count changed (a memory diff or snapshot awaiting review in a scope you write was
  proposed or decided, the assistant proposed an action in your chat, an agent run of yours failed): refetch
  `GET .../inbox/count`;
- `resync` `{{}}` — this stream fell behind or could not check an event (the database was busy): what you show
  may be out of date.

Events carry ids and names only, never titles or text. **Access is checked at delivery**, as you, at that moment:
an event about a record you can no longer read is not sent (nor who changed it); you are never told of your own
changes. A comment line (`: keep-alive`) comes every `live.heartbeat_seconds` (15 s) while nothing else does; each
also checks that you are still signed in and a member, and ends the stream when you are not (sign-out, removal,
a revoked token). Works across several server processes (PostgreSQL LISTEN/NOTIFY). Each server process holds
at most `live.max_clients` streams: beyond them 429. Personal access tokens may follow a stream as well (read-only
ones too); browsers use the session cookie. Behind a reverse proxy, turn response buffering off for this path
(nginx: the stream sends `X-Accel-Buffering: no`). When the server shuts down the stream ends at once, and a server
shutting down answers a new one 503 (with `Retry-After`): reconnect, to another process if there is one."""

Records = Annotated[tuple[str, ...], QueryParameter(
    name="record", description=f"a record the page shows, by display ID like `DOC-7` (repeat it, up to {MAX_TOPICS}; "
    "anything else: 422)")]


def _message(line: LiveMessage) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=msgspec.json.encode(dict(line.data)).decode(), event=line.kind)


def _inbox(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Queued]) -> Callable[[LiveEvent], None]:
    """The hub's callback (on the listener's thread): hands the event to this stream's loop; a full queue drops
    it and queues ``None`` once, which the stream answers with ``resync``."""
    def put(event: LiveEvent) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueFull):
                queue.get_nowait()
                queue.put_nowait(None)

    return lambda event: loop.call_soon_threadsafe(put, event)


def _ending(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Queued]) -> Callable[[], None]:
    """The hub's ``end`` callback (on the thread closing it): queues ``CLOSING``, dropping what waits if it must."""
    def put() -> None:
        while True:
            try:
                queue.put_nowait(CLOSING)
                return
            except asyncio.QueueFull:
                queue.get_nowait()

    def end() -> None:
        with contextlib.suppress(RuntimeError):  # the stream's loop is closed: it has ended already
            loop.call_soon_threadsafe(put)

    return end


async def _follow(live: LiveUseCases, caller: Credential, org_id: int, queue: asyncio.Queue[Queued],
                  leave: Callable[[], None], heartbeat: float) -> AsyncIterator[ServerSentEventMessage]:
    """Until the client goes away (Litestar cancels this; ``finally`` leaves the hub) or may no longer follow."""
    try:
        yield ServerSentEventMessage(data="{}", event="ready")
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                try:
                    await sync_to_thread(live.check, caller, org_id)
                except RetryableError:  # the database is busy or away: the next heartbeat asks again
                    pass
                except TowError:  # signed out, removed from the organisation: the stream ends
                    return
                yield ServerSentEventMessage(data=None, comment="keep-alive")
                continue
            if event is CLOSING:  # the server is shutting down
                return
            if event is None:
                yield _message(RESYNC)
                continue
            try:
                line = await sync_to_thread(live.deliver, caller, org_id, event)
            except RetryableError:  # undecided, so not sent: the page is told it may be out of date
                line = RESYNC
            except TowError:
                return
            if line is not None:
                yield _message(line)
    finally:
        leave()


@get("/organisations/{org_id:int}/live", summary="Follow live updates (SSE)", description=LIVE_PROTOCOL,
     media_type="text/event-stream")
async def live_updates(org_id: int, caller: NamedDependency[Credential], live: NamedDependency[LiveUseCases],
                       settings: NamedDependency[Settings], record: Records = ()) -> ServerSentEvent:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Queued] = asyncio.Queue(QUEUED_PER_STREAM)
    # Subscribing answers here, so a refused stream is a plain 404 / 429 / 503 rather than an empty stream.
    leave = await sync_to_thread(live.subscribe, caller, org_id, record, _inbox(loop, queue), _ending(loop, queue))
    stream = _follow(live, caller, org_id, queue, leave, settings.live.heartbeat_seconds)
    weakref.finalize(stream, leave)  # a client gone before the stream started still leaves the hub
    return ServerSentEvent(stream, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


live_router = Router(path="/api", route_handlers=[live_updates], tags=["live"])
