"""A unit of work over in-memory fakes, for use case objects (``tow_core.use_cases``) in unit tests.

Stores a test does not give are stand-ins that fail loudly when touched, so a use case reaching for a
port the test did not expect is a failing test, not a silent ``None`` — except ``live``: every write publishes
live events (``tow_core.live``), so a test that does not look at them gets a fresh ``InMemoryLiveEvents``."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime, timedelta

from tests.fake_history import rolled_back_on_error
from tests.fake_live import InMemoryLiveEvents
from tow_core.identity import Session
from tow_core.unit_of_work import SessionCredential, Stores, Transactions, UnitOfWork


class NotInThisTest:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> object:
        raise AssertionError(f"this test's unit of work has no {self._name} store (asked for .{attribute})")


def fake_unit_of_work(*, rollback: tuple[object, ...] = (), **stores: object) -> UnitOfWork:
    """Yields ``Stores`` of the given fakes; when the block raises, every fake in ``rollback`` is restored."""
    unknown = set(stores) - {f.name for f in fields(Stores)}
    if unknown:
        raise TypeError(f"Stores has no {sorted(unknown)}")

    if "notifications" not in stores:  # every record change notifies: a quiet store unless the test gives one
        from tests.fake_notifications import InMemoryNotifications
        stores = {**stores, "notifications": InMemoryNotifications(stores.get("records"), stores.get("directory"),
                                                                        stores.get("agent_runs"),
                                                                        stores.get("memory_diffs"))}

    @contextmanager
    def unit_of_work() -> Iterator[Stores]:
        with rolled_back_on_error(*rollback):
            given = {"live": InMemoryLiveEvents(), **stores}
            yield Stores(**{f.name: given.get(f.name, NotInThisTest(f.name)) for f in fields(Stores)})

    return unit_of_work


def fake_transactions(clock: Callable[[], datetime], *, rollback: tuple[object, ...] = (),
                      **stores: object) -> Transactions:
    return Transactions(fake_unit_of_work(rollback=rollback, **stores), clock)


def signed_in(directory, user_id: int, now: datetime, *, lifetime: timedelta = timedelta(days=1)
              ) -> SessionCredential:
    """A live session for ``user_id`` in the fake ``directory``; its credential, as a verified cookie gives."""
    token_hash = secrets.token_hex(16)
    directory.add_session(Session(token_hash, user_id, None, now + lifetime))
    return SessionCredential(token_hash)



def with_inbox(clock: Callable[[], datetime], **stores: object) -> dict[str, object]:
    """``stores`` plus empty fakes of the ones every page's frame reads for its inbox count (tow_core.inbox)
    and its sidebar doc tree (``history.tree``) that are not given: for tests of pages about neither."""
    from tests.fake_agent_runs import InMemoryAgentRuns
    from tests.fake_conversations import InMemoryConversations
    from tests.fake_history import (
        InMemoryDocRevisions,
        InMemoryRecordTree,
        InMemoryTicketActivity,
        InMemoryTicketComments,
        InMemoryTicketLinks,
    )
    from tests.fake_records import InMemoryMemoryDiffStore, InMemoryRecordStore
    from tow_core.record_history import RecordKeeping
    directory = stores["directory"]
    records = stores.get("records") or InMemoryRecordStore(directory, clock)

    def history() -> RecordKeeping:
        parts = (InMemoryDocRevisions(clock), InMemoryTicketActivity(clock), InMemoryTicketComments(clock),
                 InMemoryTicketLinks(records, clock))
        return RecordKeeping(parts[0], InMemoryRecordTree(records, *parts), *parts[1:], InMemoryLiveEvents())

    defaults = {"records": lambda: records, "memory_diffs": lambda: InMemoryMemoryDiffStore(directory, clock),
                "conversations": lambda: InMemoryConversations(directory), "agent_runs": InMemoryAgentRuns,
                "history": history}
    return {**{name: make() for name, make in defaults.items() if name not in stores}, **stores}
