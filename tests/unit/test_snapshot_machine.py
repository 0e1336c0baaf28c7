"""Snapshots as a state machine over in-memory fakes: people create snapshots of a few snapshot types
in a few scopes, edit their text, activate them, move and retype them, and try illegal moves; the
lifecycle of SPEC §4 holds throughout.

The world: Ada owns Acme; Bob is a member; Vic is a member with a *viewer* grant on the restricted
project SEC (Bob has no grant). Snapshots live in the organisation scope, in SEC and in Bob's private
scope. Every outcome of ``knowledge.create_record`` / ``update_record`` is predicted from the pure access
policy, ``records.TRANSITIONS`` and the versions, then compared with what the use cases do.

Invariants: at most one active snapshot per (snapshot_type, scope); superseded and failed are
terminal; a snapshot's title and body never change once it was activated; versions only grow and
nothing is deleted; every refused action changes nothing.

The fakes have no transactions. A refusal is checked literally (nothing written at all), except a
stale version: the core checks the version when it saves, after an activation already superseded the
previous snapshot, and relies on the use case's transaction to undo that — so the test rolls back
just as PostgreSQL would (``rollback``), and checks every other refusal without any rollback.

Moving or retyping an *active* snapshot is left out of the machine's random rules; the two tests at
the end pin what it does: it supersedes the active snapshot already in its new (type, scope) slot.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.fake_records import InMemoryRecordStore
from tests.fakes import InMemoryDirectory
from tow_core import knowledge
from tow_core.access import OrgRole, ProjectRole, Scope, Visibility, can_read_scope, can_write_scope
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound, TowError
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.knowledge import RecordChange, Workspace
from tow_core.records import SNAPSHOT_TYPES, TRANSITIONS, NewRecord, Record, RecordType

USERS = ("ada", "bob", "vic")
ACTORS = st.sampled_from(USERS)
SCOPES = ("org", "sec", "bob")
TYPES = SNAPSHOT_TYPES[:3]
STATUSES = (*TRANSITIONS[RecordType.SNAPSHOT], "archived")  # "archived" is no snapshot status at all
BEFORE_ACTIVATION = ("generating", "pending_review")
TERMINAL = ("superseded", "failed")
SNAPSHOT = TRANSITIONS[RecordType.SNAPSHOT]


class SnapshotStore(InMemoryRecordStore):
    """The in-memory record store plus the one query snapshot activation needs."""

    def active_snapshots_for_update(self, org_id: int, snapshot_type: str, scope: Scope) -> list[Record]:
        return sorted((r for r in self.rows.values()
                       if r.organisation_id == org_id and r.type is RecordType.SNAPSHOT and r.status == "active"
                       and r.fields.get("snapshot_type") == snapshot_type and r.scope == scope),
                      key=lambda r: r.id)


@dataclass(frozen=True)
class World:
    directory: InMemoryDirectory
    records: SnapshotStore
    ids: dict[str, int]
    org: int
    scopes: dict[str, Scope]

    def ws(self, user: str) -> Workspace:
        return Workspace(self.records, self.directory, self.directory.principal(self.ids[user]), self.org)

    def project(self, scope: Scope):
        return knowledge.project_access_of(self.ws("ada"), scope)

    def can(self, user: str, scope: Scope, *, write: bool) -> bool:
        decide = can_write_scope if write else can_read_scope
        return decide(self.directory.principal(self.ids[user]), scope, self.project(scope))


def build_world(clock) -> World:
    d = InMemoryDirectory(clock)
    ids = {name: d.add_user(f"{name}@example.com", name.title(), None, server_admin=False).id for name in USERS}
    org = d.add_organisation("Acme", WorkflowMode.ORGANIZATION).id
    for name, role in (("ada", OrgRole.OWNER), ("bob", OrgRole.MEMBER), ("vic", OrgRole.MEMBER)):
        d.set_membership(org, ids[name], role)
    sec = d.add_project(Project(0, org, "SEC", "Sec", "", None, Visibility.RESTRICTED, ProjectStatus.ACTIVE))
    d.put_grant(sec.id, user_id=ids["vic"], group_id=None, role=ProjectRole.VIEWER)
    scopes = {"org": Scope.organisation(org), "sec": Scope.project(org, sec.id), "bob": Scope.private(org, ids["bob"])}
    return World(d, SnapshotStore(d, clock), ids, org, scopes)


def activate(world: World, user: str, record: Record) -> Record:
    return knowledge.update_record(world.ws(user), record.display_id, expected_version=record.version,
                                   change=RecordChange(status="active"))


def create(world: World, user: str, scope: Scope, snapshot_type: str, title: str = "snapshot") -> Record:
    return knowledge.create_record(world.ws(user), record_type=RecordType.SNAPSHOT, scope=scope,
                                   project=world.project(scope), title=title, body="state of things",
                                   fields={"snapshot_type": snapshot_type})


class SnapshotMachine(RuleBasedStateMachine):
    @initialize()
    def world(self) -> None:
        self.ticks = itertools.count()
        self.w = build_world(self.clock)
        self.frozen_text: dict[int, tuple[str, str]] = {}  # snapshot id -> (title, body) once activated
        self.terminal: dict[int, str] = {}  # snapshot id -> the terminal status it reached
        self.versions: dict[int, int] = {}
        for scope in SCOPES:  # one active snapshot per scope to start from, so activations supersede early
            user = "bob" if scope == "bob" else "ada"
            activate(self.w, user, create(self.w, user, self.w.scopes[scope], TYPES[0]))

    def clock(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(self.ticks))

    @property
    def rows(self) -> dict[int, Record]:
        return self.w.records.rows

    def state(self) -> tuple[dict[int, Record], list]:
        return dict(self.rows), list(self.w.directory.audit_log)

    def rollback(self, before: tuple[dict[int, Record], list]) -> None:
        """What the use case's transaction does when it raises."""
        self.w.records.rows.clear()
        self.w.records.rows.update(before[0])
        self.w.directory.audit_log[:] = before[1]

    def pick(self, data, *, where=lambda r: True) -> Record | None:
        candidates = sorted((r for r in self.rows.values() if where(r)), key=lambda r: r.id)
        return data.draw(st.sampled_from(candidates)) if candidates else None

    # --- rules ------------------------------------------------------------------------------------

    def actor(self, data, scope: Scope) -> str:
        """Mostly someone who may write ``scope`` (Bob in his own, else Ada), sometimes anyone."""
        if data.draw(st.integers(0, 3)):
            return "bob" if scope == self.w.scopes["bob"] else "ada"
        return data.draw(ACTORS)

    @rule(data=st.data(), scope=st.sampled_from(SCOPES), snapshot_type=st.sampled_from(TYPES))
    def create_snapshot(self, data, scope: str, snapshot_type: str) -> None:
        s = self.w.scopes[scope]
        user = self.actor(data, s)
        refusal = None if self.w.can(user, s, write=True) else (
            AccessDenied if self.w.can(user, s, write=False) else NotFound)
        before = self.state()
        try:
            record = create(self.w, user, s, snapshot_type, title=f"{snapshot_type} {len(self.rows)}")
        except TowError as error:
            assert type(error) is refusal, (error, refusal)
            assert self.state() == before  # nothing changes
            event("create refused")
            return
        assert refusal is None
        assert record.status == "pending_review" and record.scope == s and record.version == 1
        assert record.fields["snapshot_type"] == snapshot_type and record.author_id == self.w.ids[user]
        assert set(self.rows) == set(before[0]) | {record.id}
        assert all(self.rows[i] == r for i, r in before[0].items())  # creating supersedes nothing

    @rule(scope=st.sampled_from(SCOPES), snapshot_type=st.sampled_from(TYPES))
    def start_generation(self, scope: str, snapshot_type: str) -> None:
        """A generation run's snapshot starts in ``generating`` (written straight to the store, as such a
        run would): the only way to reach ``failed``."""
        records, s = self.w.records, self.w.scopes[scope]
        new = NewRecord(self.w.org, RecordType.SNAPSHOT, "SNP", s, f"generated {snapshot_type}", "", "generating",
                        None, {"snapshot_type": snapshot_type, "generated_by": f"run {len(self.rows)}"})
        records.add(new, records.allocate_number(self.w.org, "SNP"))

    @rule(data=st.data(), title=st.sampled_from([None, "retitled"]),
          body=st.sampled_from([None, "", "new body with SNP-1"]), stale=st.integers(0, 5))
    def edit_text(self, data, title: str | None, body: str | None, stale: int) -> None:
        record = self.pick(data)
        if record is not None:
            body = "x" if title is None and body is None else body
            self.attempt(self.actor(data, record.scope), record, RecordChange(title=title, body=body), stale=stale == 0)

    @rule(data=st.data(), status=st.sampled_from(STATUSES), stale=st.integers(0, 5))
    def set_status(self, data, status: str, stale: int) -> None:
        """Any status, legal or not: pending_review → superseded, generating → active, superseded → active,
        pending_review → failed, an unknown status, ..."""
        record = self.pick(data)
        if record is not None:
            self.attempt(self.actor(data, record.scope), record, RecordChange(status=status), stale=stale == 0)

    @rule(data=st.data(), with_text=st.booleans(), stale=st.integers(0, 9))
    def activate(self, data, with_text: bool, stale: int) -> None:
        """Mostly snapshots in review (the interesting case), sometimes one already active (activating
        twice) or any other; sometimes with a last edit of the text in the same change."""
        in_review = data.draw(st.integers(0, 3)) > 0
        record = self.pick(data, where=(lambda r: r.status == "pending_review") if in_review else (lambda r: True))
        if record is not None:
            change = RecordChange(status="active", body="final text" if with_text else None)
            self.attempt(self.actor(data, record.scope), record, change, stale=stale == 0)

    @rule(data=st.data(), scope=st.sampled_from(SCOPES),
          snapshot_type=st.sampled_from((*TYPES, "not_a_type")), what=st.sampled_from(("scope", "type", "run")))
    def move_or_retype(self, data, scope: str, snapshot_type: str, what: str) -> None:
        """Move or retype a snapshot that is not active (moving an active one: see the tests at the end);
        any snapshot may get a new ``generated_by``."""
        record = self.pick(data, where=lambda r: what == "run" or r.status != "active")
        if record is None:
            return
        if what == "scope":
            s = self.w.scopes[scope]
            change = RecordChange(scope=(s, self.w.project(s)))
        elif what == "type":
            change = RecordChange(fields={"snapshot_type": snapshot_type})
        else:
            change = RecordChange(fields={"generated_by": f"run {len(self.rows)}"})
        self.attempt(self.actor(data, record.scope), record, change, stale=False)

    # --- prediction and comparison -----------------------------------------------------------------

    def expected_refusal(self, user: str, record: Record, change: RecordChange, stale: bool
                         ) -> type[TowError] | None:
        """The refusal ``update_record`` must raise, in the order its rules say."""
        if not self.w.can(user, record.scope, write=False):
            return NotFound
        if not self.w.can(user, record.scope, write=True):
            return AccessDenied
        if change.scope is not None and change.scope[0] != record.scope and not self.w.can(
                user, change.scope[0], write=True):
            return AccessDenied
        if change.status is not None:
            if change.status not in SNAPSHOT:
                return InvalidInput
            if change.status != record.status and change.status not in SNAPSHOT[record.status]:
                return Conflict
        edits_text = change.title is not None or change.body is not None
        if edits_text and record.status not in BEFORE_ACTIVATION:
            return InvalidInput
        if change.fields is not None and change.fields.get("snapshot_type", TYPES[0]) not in SNAPSHOT_TYPES:
            return InvalidInput
        return Conflict if stale else None

    def attempt(self, user: str, record: Record, change: RecordChange, *, stale: bool) -> None:
        expected_version = max(0, record.version - 1) if stale else record.version
        stale = expected_version != record.version
        refusal = self.expected_refusal(user, record, change, stale)
        before = self.state()
        try:
            saved = knowledge.update_record(self.w.ws(user), record.display_id, expected_version=expected_version,
                                            change=change)
        except TowError as error:
            assert type(error) is refusal, (error, refusal, record, change)
            if refusal is Conflict and stale:
                self.rollback(before)  # the version is checked on save, in the transaction
            assert self.state() == before, "a refused change left something behind"
            event(f"refused {type(error).__name__}")
            return
        assert refusal is None, (refusal, record, change)
        self.check_applied(user, record, change, saved, before[0])

    def check_applied(self, user: str, record: Record, change: RecordChange, saved: Record,
                      before: dict[int, Record]) -> None:
        scope = change.scope[0] if change.scope is not None else record.scope
        status = change.status or record.status
        fields = {**record.fields, **(change.fields or {})}
        assert saved.id == record.id and saved.version == record.version + 1
        assert (saved.scope, saved.status, dict(saved.fields)) == (scope, status, fields)
        assert saved.title == (change.title if change.title is not None else record.title)
        assert saved.body == (change.body if change.body is not None else record.body)
        assert self.rows[saved.id] == saved
        activating = status == "active" and record.status != "active"
        superseded = {i for i, r in before.items() if i != record.id and activating and r.status == "active"
                      and r.fields["snapshot_type"] == fields["snapshot_type"] and r.scope == scope}
        assert set(self.rows) == set(before), "an update created or deleted a record"
        for i, was in before.items():
            if i == record.id:
                continue
            now = self.rows[i]
            if i in superseded:  # the previous active snapshot of the same type and scope
                assert now.status == "superseded" and now.version == was.version + 1
                assert (now.title, now.body, now.scope, now.fields) == (was.title, was.body, was.scope, was.fields)
            else:
                assert now == was
        event("activated" if activating else f"changed to {status}")
        if superseded:
            event("superseded the previous one")

    # --- invariants -------------------------------------------------------------------------------

    @invariant()
    def at_most_one_active_snapshot_per_type_and_scope(self) -> None:
        seen: dict[tuple[str, Scope], str] = {}
        for record in sorted(self.rows.values(), key=lambda r: r.id):
            if record.status == "active":
                key = (record.fields["snapshot_type"], record.scope)
                assert key not in seen, f"{seen[key]} and {record.display_id} are both active for {key}"
                seen[key] = str(record.display_id)

    @invariant()
    def superseded_and_failed_are_terminal(self) -> None:
        for record_id, status in self.terminal.items():
            assert self.rows[record_id].status == status
        for record in self.rows.values():
            assert record.status in SNAPSHOT
            if record.status in TERMINAL:
                self.terminal.setdefault(record.id, record.status)

    @invariant()
    def text_never_changes_after_activation(self) -> None:
        for record_id, text in self.frozen_text.items():
            record = self.rows[record_id]
            assert (record.title, record.body) == text, f"{record.display_id}'s text changed after activation"
        for record in self.rows.values():
            if record.status in ("active", "superseded"):
                self.frozen_text.setdefault(record.id, (record.title, record.body))

    @invariant()
    def versions_only_grow_and_nothing_is_deleted(self) -> None:
        assert set(self.versions) <= set(self.rows)
        assert all(self.rows[i].version >= v for i, v in self.versions.items())
        self.versions = {i: r.version for i, r in self.rows.items()}

    @invariant()
    def activations_are_audited_once_each(self) -> None:
        activations = [e.target for e in self.w.directory.audit_log if e.action is AuditAction.SNAPSHOT_ACTIVATED]
        assert len(activations) == len(set(activations))  # re-activating an active snapshot is no activation
        ever_active = {str(r.display_id) for r in self.rows.values() if r.status in ("active", "superseded")}
        assert set(activations) == ever_active


SnapshotMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow],
)
test_snapshots = SnapshotMachine.TestCase


# --- known bug: an active snapshot can be moved or retyped next to another active one ------------------------


@pytest.fixture
def world() -> World:
    ticks = itertools.count()
    return build_world(lambda: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(ticks)))


def active_per_slot(world: World) -> dict[tuple[str, Scope], list[str]]:
    slots: dict[tuple[str, Scope], list[str]] = {}
    for record in sorted(world.records.rows.values(), key=lambda r: r.id):
        if record.status == "active":
            slots.setdefault((record.fields["snapshot_type"], record.scope), []).append(str(record.display_id))
    return slots


def test_moving_an_active_snapshot_keeps_one_active_per_type_and_scope(world: World) -> None:
    org, mine = world.scopes["org"], world.scopes["bob"]
    activate(world, "bob", create(world, "bob", org, "daily_summary"))
    private = activate(world, "bob", create(world, "bob", mine, "daily_summary"))
    knowledge.update_record(world.ws("bob"), private.display_id, expected_version=private.version,
                            change=RecordChange(scope=(org, None)))
    assert active_per_slot(world) == {("daily_summary", org): [str(private.display_id)]}


def test_retyping_an_active_snapshot_keeps_one_active_per_type_and_scope(world: World) -> None:
    org = world.scopes["org"]
    activate(world, "ada", create(world, "ada", org, "daily_summary"))
    weekly = activate(world, "ada", create(world, "ada", org, "weekly_review"))
    knowledge.update_record(world.ws("ada"), weekly.display_id, expected_version=weekly.version,
                            change=RecordChange(fields={"snapshot_type": "daily_summary"}))
    assert active_per_slot(world) == {("daily_summary", org): [str(weekly.display_id)]}
