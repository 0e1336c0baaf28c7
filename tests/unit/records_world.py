"""One organisation over the in-memory fakes, for the docs and tickets unit tests: the same people and
projects as tests/e2e/org_world.py, so a rule reads the same in both suites.

Ada owns Acme; Bob and Cy are plain members; Bob is in group Eng. Project APP is restricted with Bob as
viewer, OPS is open, SEC is restricted without Bob or Cy. Oscar owns Other, an organisation of his own.
Principals are reloaded for every workspace, as a request would; each use case call made through
``World.do`` runs in one (stand-in) transaction, rolled back when it raises.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tests.fake_history import (
    InMemoryDocRevisions,
    InMemoryRecordTree,
    InMemoryTicketActivity,
    InMemoryTicketComments,
    InMemoryTicketLinks,
    rolled_back_on_error,
)
from tests.fake_live import InMemoryLiveEvents
from tests.fake_records import InMemoryRecordStore
from tests.fake_unit_of_work import fake_transactions, signed_in
from tests.fakes import InMemoryDirectory
from tow_core import knowledge
from tow_core.access import OrgRole, ProjectRole, Scope, Visibility
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.knowledge import RecordChange, Workspace
from tow_core.record_history import RecordKeeping
from tow_core.records import Record, RecordType
from tow_core.unit_of_work import SessionCredential, Transactions

T = TypeVar("T")


class Clock:
    """A second passes on every reading, so timestamps are distinct and ordered."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> datetime:
        return datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(seconds=next(self._ticks))


class World:
    def __init__(self) -> None:
        clock = self.clock = Clock()
        d = self.directory = InMemoryDirectory(clock)
        self.ids = {name: d.add_user(f"{name}@example.com", name.title(), None, server_admin=False).id
                    for name in ("ada", "bob", "cy", "oscar")}
        self.org = d.add_organisation("Acme", WorkflowMode.ORGANIZATION).id
        self.other_org = d.add_organisation("Other", WorkflowMode.FOUNDER).id
        for name, role in (("ada", OrgRole.OWNER), ("bob", OrgRole.MEMBER), ("cy", OrgRole.MEMBER)):
            d.set_membership(self.org, self.ids[name], role)
        d.set_membership(self.other_org, self.ids["oscar"], OrgRole.OWNER)
        self.eng = d.add_group(self.org, "Eng").id
        d.add_group_member(self.eng, self.ids["bob"])
        self.projects = {key: d.add_project(Project(0, self.org, key, f"{key} project", "", None, visibility,
                                                    ProjectStatus.ACTIVE)).id
                         for key, visibility in (("APP", Visibility.RESTRICTED), ("OPS", Visibility.OPEN),
                                                 ("SEC", Visibility.RESTRICTED))}
        d.put_grant(self.projects["APP"], user_id=self.ids["bob"], group_id=None, role=ProjectRole.VIEWER)
        self.records = InMemoryRecordStore(d, clock)
        self.revisions = InMemoryDocRevisions(clock)
        self.activity = InMemoryTicketActivity(clock)
        self.comments = InMemoryTicketComments(clock)
        self.links = InMemoryTicketLinks(self.records, clock)
        self.tree = InMemoryRecordTree(self.records, self.revisions, self.activity, self.comments, self.links)
        self.live = InMemoryLiveEvents()  # what the world's units of work published (tow_core.live)
        self.keeping = RecordKeeping(self.revisions, self.tree, self.activity, self.comments, self.links, self.live)

    # --- scopes -----------------------------------------------------------------------------------

    @property
    def org_scope(self) -> Scope:
        return Scope.organisation(self.org)

    def project(self, key: str) -> Scope:
        return Scope.project(self.org, self.projects[key])

    def private(self, name: str) -> Scope:
        return Scope.private(self.org, self.ids[name])

    def group(self) -> Scope:
        return Scope.group(self.org, self.eng)

    # --- acting -----------------------------------------------------------------------------------

    def ws(self, name: str, org_id: int | None = None) -> Workspace:
        principal = self.directory.principal(self.ids[name])
        assert principal is not None
        return Workspace.for_member(self.records, self.directory, principal, org_id or self.org,
                                    history=self.keeping)

    @property
    def transactions(self) -> Transactions:
        """Use case objects' unit of work over this world's fakes (rolled back when a call raises)."""
        return fake_transactions(self.clock, rollback=self._tables, directory=self.directory, records=self.records,
                                 history=self.keeping, live=self.live)

    def credential(self, name: str) -> SessionCredential:
        """A signed-in session for ``name``, as the front door hands it to a use case object."""
        return signed_in(self.directory, self.ids[name], self.clock())

    @property
    def _tables(self) -> tuple[object, ...]:
        return self.records, self.directory, self.revisions, self.activity, self.comments, self.links, self.live

    def do(self, name: str, use_case: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``use_case(workspace of name, *args, **kwargs)`` in one transaction."""
        with rolled_back_on_error(*self._tables):
            return use_case(self.ws(name), *args, **kwargs)

    def create(self, name: str, record_type: RecordType, title: str, scope: Scope, *, body: str = "",
               fields: Mapping[str, Any] | None = None) -> Record:
        def create(ws: Workspace) -> Record:
            return knowledge.create_record(ws, record_type=record_type, scope=scope,
                                           project=knowledge.project_access_of(ws, scope), title=title, body=body,
                                           fields=fields)
        return self.do(name, create)

    def update(self, name: str, record: Record, *, version: int | None = None, scope: Scope | None = None,
               **change: Any) -> Record:
        """Change ``record`` as ``name``, at its current version unless ``version`` is given."""
        current = self.records.rows[record.id]

        def update(ws: Workspace) -> Record:
            moved = (scope, knowledge.project_access_of(ws, scope)) if scope is not None else None
            return knowledge.update_record(ws, record.display_id, expected_version=version or current.version,
                                           change=RecordChange(scope=moved, **change))
        return self.do(name, update)

    def now(self, record: Record) -> Record:
        """The record as stored now."""
        return self.records.rows[record.id]
