"""Differential leak test over the read paths added after test_records_leak (SPEC §2 "One predicate"),
on a real PostgreSQL.

The random worlds of test_visibility_differential (organisations, memberships, deactivated users,
groups, open/restricted projects, direct and group grants, records in all four scopes) become real
rows: each world record is a doc (``DOC-<id>``, maybe under an earlier doc of its organisation, with
revisions), a ticket (``TKT-<id>``, with comments, activity and links to tickets of its organisation)
or a memory item (``MEM-<id>``); memory diffs of random statuses sit in random scopes and name memory
items. Then, for every user, each path must return exactly what the pure policy (``can_read_scope``)
allows — both directions, no more and no less:

- memory diffs: ``PgMemoryDiffStore.readable`` (also asked from the wrong organisation), every page of
  ``list_readable`` (with and without a status filter), and ``memory_review.get_diff`` (its readable
  items are exactly the named items the caller can read);
- ticket links: ``PgTicketLinks.readable`` for every ticket (only links whose other end is readable,
  with the right direction), by link id, and ``tickets.list_links`` (404 for an unreadable ticket);
- doc revisions: ``docs.list_revisions`` (the doc's revisions for its readers, else 404), and the revision
  pages' reads ``revisions.version_of`` (each kept version and the current one) and ``revisions.compare``
  (issue 18: for the doc's readers, else 404 whichever version is asked);
- doc tree: ``PgRecordTree.readable_docs`` and ``docs.doc_tree`` (whole organisation and per project:
  exactly the readable docs, a page under a hidden parent shown at the top), ``PgRecordTree.ancestors``
  (a summary only for readable ancestors) and ``docs.breadcrumbs`` (hidden ancestors are "…"), and the
  sidebar's one-level-at-a-time ``docs.doc_branches`` (issue 18: the same tree; any other doc is 404);
- comments and activity: ``tickets.list_comments`` / ``tickets.activity_log`` (for readable tickets,
  else 404), and ``tickets.readable_comment`` (issue 19: the one comment the live ticket page appends), asked of
  every ticket and doc with every comment id of the world and one never made: the comment exactly when it is that
  readable ticket's own, else 404 — other tickets' and other organisations' ids, lost grants, hidden tickets;
- conversations (issue 13), whose rule is not the record predicate but "the owner alone, while an active member
  who reads the conversation's project": ``PgConversations.owned``, ``conversations.owned_conversation`` in the
  caller's workspace (404 for everyone else, organisation owners and admins included), and every page of
  ``list_owned`` over ``readable_project_ids``.

Core use cases run with a ``Workspace`` built from ``PgDirectory`` and ``PgRecordStore`` on the same
connection. Random revocations follow, and everything is checked again on the very next statements.
Each world is loaded in one transaction that is rolled back. ``STATS`` counts the worlds, the
(user, path, object) checks and the disagreements ("leaks", either direction).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.test_visibility_differential import REVOCATIONS, World, load, revoke, worlds
from tests.suite_figures import say
from tow_adapters.postgres.conversations import PgConversations
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.history import (
    PgDocRevisions,
    PgRecordTree,
    PgTicketActivity,
    PgTicketComments,
    PgTicketLinks,
)
from tow_adapters.postgres.memory_diffs import PgMemoryDiffStore
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_core import conversations, docs, revisions, tickets
from tow_core.access import ProjectAccess, Scope, can_read_project, can_read_scope
from tow_core.errors import NotFound
from tow_core.knowledge import Workspace
from tow_core.memory_diffs import (
    DiffStatus,
)
from tow_core.memory_review import (
    MemoryDesk,
    get_diff,
)
from tow_core.records import DisplayId

STATS: dict = {"worlds": 0, "checks": 0, "leaks": 0}
BY_PATH: Counter = Counter()

PAGE = 2  # small, so that diff lists span several pages
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PREFIX = {"doc": "DOC", "ticket": "TKT", "memory": "MEM"}
STATUS = {"doc": "active", "ticket": "todo", "memory": "active"}
DECIDED = [s.value for s in DiffStatus if s is not DiffStatus.PENDING]


@pytest.fixture(scope="module")
def leak_engine(embedded_postgres, request):
    embedded_postgres.ensure_database("more_leak_paths")
    engine = create_engine(embedded_postgres.url("more_leak_paths"), PoolOptions(pool_size=1, max_overflow=0))
    PgSchemaMigrator(engine).upgrade()
    with engine.begin() as conn:
        # ``load`` (shared with the visibility differential) also fills this probe table; unused here.
        conn.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS probe_records (id bigint PRIMARY KEY, organisation_id bigint NOT NULL, "
            "scope_kind text NOT NULL, scope_ref bigint NOT NULL)"
        ))
    yield engine
    engine.dispose()
    if STATS["worlds"]:
        say(request.config, f"more leak paths: {STATS['worlds']} worlds, {STATS['checks']} (user, path, object) checks, "
        f"{STATS['leaks']} leaks")


# --- the world's rows ---------------------------------------------------------------------------------


def all_scopes(world: World) -> list[Scope]:
    scopes = [Scope.organisation(o) for o in world.orgs]
    scopes += [Scope.group(org, g) for g, org in world.groups.items()]
    scopes += [Scope.project(org, p) for p, (org, _) in world.projects.items()]
    scopes += [Scope.private(o, u) for o in world.orgs for u in world.active]
    return scopes


class Facts:
    """What the world's records carry beyond their scope, drawn by hypothesis."""

    def __init__(self, world: World, data) -> None:
        self.world = world
        ids = sorted(world.records)
        self.type = {r: data.draw(st.sampled_from(["doc", "doc", "ticket", "ticket", "memory"]), label=f"type{r}")
                     for r in ids}
        self.parent: dict[int, int | None] = {}
        for r in self.of("doc"):
            earlier = [d for d in self.of("doc") if d < r and self.org(d) == self.org(r)]
            self.parent[r] = data.draw(st.sampled_from([None, *earlier]), label=f"parent{r}")
        self.revisions = {r: list(range(1, data.draw(st.integers(0, 2), label=f"revisions{r}") + 1))
                          for r in self.of("doc")}
        next_id = iter(range(1, 10_000))
        self.comments = {r: [next(next_id) for _ in range(data.draw(st.integers(0, 2), label=f"comments{r}"))]
                         for r in self.of("ticket")}
        self.activity = {r: [next(next_id) for _ in range(data.draw(st.integers(1, 2), label=f"activity{r}"))]
                         for r in self.of("ticket")}
        self.links: dict[int, tuple[int, int, str]] = {}  # link id -> (source, target, kind)
        pairs = [(a, b) for a in self.of("ticket") for b in self.of("ticket") if a != b and self.org(a) == self.org(b)]
        keys = set()
        for source, target in data.draw(st.lists(st.sampled_from(pairs), max_size=8), label="links") if pairs else []:
            kind = data.draw(st.sampled_from(["relates_to", "blocks", "duplicates"]), label="kind")
            key = (min(source, target), max(source, target), kind) if kind == "relates_to" else (source, target, kind)
            if key not in keys:
                keys.add(key)
                self.links[len(self.links) + 1] = (source, target, kind)
        scopes = all_scopes(world)
        self.diffs: dict[int, tuple[Scope, str, int, list[int]]] = {}  # id -> (scope, status, age, named items)
        for diff_id in range(1, data.draw(st.integers(0, 8), label="diffs") + 1):
            scope = data.draw(st.sampled_from(scopes), label=f"diff{diff_id}")
            items = [m for m in self.of("memory") if self.org(m) == scope.organisation_id]
            named = data.draw(st.lists(st.sampled_from(items), unique=True, max_size=3), label="named") if items else []
            status = data.draw(st.sampled_from(["pending", "pending", *DECIDED]), label="status")
            self.diffs[diff_id] = (scope, status, data.draw(st.integers(0, 2), label="age"), named)
        owners = sorted(world.active)
        self.conversations: dict[int, tuple[int, int, int | None, int]] = {}  # id -> (owner, org, project, age)
        for conversation_id in range(1, data.draw(st.integers(0, 8), label="conversations") + 1):
            org = data.draw(st.sampled_from(world.orgs), label=f"conversation{conversation_id}")
            in_org = [p for p, (p_org, _) in world.projects.items() if p_org == org]
            project = data.draw(st.sampled_from([None, *in_org]), label="project")
            self.conversations[conversation_id] = (data.draw(st.sampled_from(owners), label="owner"), org, project,
                                                   data.draw(st.integers(0, 2), label="age"))

    def of(self, record_type: str) -> list[int]:
        return sorted(r for r, t in self.type.items() if t == record_type)

    def org(self, record_id: int) -> int:
        return self.world.records[record_id].organisation_id

    def display_id(self, record_id: int) -> DisplayId:
        return DisplayId(PREFIX[self.type[record_id]], record_id)

    def title(self, record_id: int) -> str:
        return f"{self.type[record_id]} {record_id}"

    def insert(self, conn: sa.Connection) -> None:
        def insert(sql: str, rows: list[dict]) -> None:
            if rows:
                conn.execute(sa.text(sql), rows)

        insert(
            "INSERT INTO records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, "
            "status, fields, version) VALUES (:id, :o, :type, :prefix, :id, :k, :ref, :title, 'body', :status, "
            "CAST(:fields AS jsonb), 3)",
            [{"id": r, "o": s.organisation_id, "type": self.type[r], "prefix": PREFIX[self.type[r]],
              "k": s.kind.value, "ref": s.ref_id, "title": self.title(r), "status": STATUS[self.type[r]],
              "fields": json.dumps({"parent_id": self.parent[r]} if self.parent.get(r) else
                                   {"memory_type": "fact"} if self.type[r] == "memory" else {})}
             for r, s in self.world.records.items()],
        )
        insert("INSERT INTO doc_revisions (record_id, version, title, body, saved_at) "
               "VALUES (:id, :v, :title, 'old body', :at)",
               [{"id": r, "v": v, "title": f"old title {r}.{v}", "at": EPOCH}
                for r, versions in self.revisions.items() for v in versions])
        insert("INSERT INTO ticket_comments (id, record_id, body) VALUES (:cid, :id, 'a comment')",
               [{"cid": c, "id": r} for r, ids in self.comments.items() for c in ids])
        insert("INSERT INTO ticket_activity (id, record_id, field, old_value, new_value) "
               "VALUES (:aid, :id, 'title', '\"old\"', '\"new\"')",
               [{"aid": a, "id": r} for r, ids in self.activity.items() for a in ids])
        insert("INSERT INTO ticket_links (id, organisation_id, source_id, target_id, kind) "
               "VALUES (:id, :o, :s, :t, :kind)",
               [{"id": i, "o": self.org(s), "s": s, "t": t, "kind": k} for i, (s, t, k) in self.links.items()])
        insert(
            "INSERT INTO memory_diffs (id, organisation_id, scope_kind, scope_ref, source, rationale, operations, "
            "status, decided_at, created_at) VALUES (:id, :o, :k, :ref, 'manual', 'why', CAST(:ops AS jsonb), "
            ":status, :decided, :at)",
            [{"id": i, "o": scope.organisation_id, "k": scope.kind.value, "ref": scope.ref_id,
              "ops": json.dumps([{"op": "archive", "items": [{"item": f"MEM-{m}", "base_version": 3}]} for m in named]
                                or [{"op": "create", "title": "new", "body": "", "fields": {"memory_type": "fact"}}]),
              "status": status, "decided": None if status == "pending" else EPOCH,
              "at": EPOCH - timedelta(days=age)}
             for i, (scope, status, age, named) in self.diffs.items()],
        )
        insert("INSERT INTO conversations (id, owner_id, organisation_id, project_id, title, created_at, updated_at) "
               "OVERRIDING SYSTEM VALUE VALUES (:id, :owner, :o, :p, 'private thoughts', :at, :at)",
               [{"id": i, "owner": owner, "o": org, "p": project, "at": EPOCH - timedelta(days=age)}
                for i, (owner, org, project, age) in self.conversations.items()])


# --- checks --------------------------------------------------------------------------------------------------


def expect(path: str, got, want, context: str, *, checks: int = 1) -> None:
    STATS["checks"] += checks
    BY_PATH[path] += checks
    if got != want:
        STATS["leaks"] += 1
    assert got == want, f"{path} for {context}: got {got}, policy says {want}"


def not_found(call) -> bool:
    try:
        call()
    except NotFound:
        return True
    return False


class Checker:
    def __init__(self, conn: sa.Connection, facts: Facts) -> None:
        self.facts, self.world = facts, facts.world
        self.directory = PgDirectory(conn)
        self.records = PgRecordStore(conn)
        self.diffs = PgMemoryDiffStore(conn)
        self.links = PgTicketLinks(conn)
        self.tree = PgRecordTree(conn)
        self.revisions = PgDocRevisions(conn)
        self.comments = PgTicketComments(conn)
        self.activity = PgTicketActivity(conn)
        self.conversations = PgConversations(conn)

    def run(self) -> None:
        for user in self.world.active:
            self.check_user(user)

    def can_read(self, user: int, scope: Scope) -> bool:
        return can_read_scope(self.world.principal(user), scope, self.world.project_access(scope))

    def check_user(self, user: int) -> None:
        facts, world = self.facts, self.world
        readable = {r for r, s in world.records.items() if self.can_read(user, s)}
        principal = self.directory.principal(user)  # loaded once per user, as once per request
        member_of = {o for o in world.orgs if world.active[user] and (o, user) in world.memberships}
        for org in world.orgs:
            ws = Workspace(self.records, self.directory, principal, org)
            in_org = {r for r in world.records if facts.org(r) == org}
            context = f"user {user}, organisation {org}"
            self.check_diffs(user, org, ws, context)
            self.check_tickets(user, org, ws, readable, in_org, context)
            self.check_docs(user, org, ws, readable, in_org, org in member_of, context)
            self.check_conversations(user, org, ws, org in member_of, context)

    # --- conversations: the owner alone, while they read its project ------------------------------------

    def check_conversations(self, user: int, org: int, ws: Workspace, member: bool, context: str) -> None:
        facts, world = self.facts, self.world
        principal = world.principal(user)

        def reads(project: int | None) -> bool:
            return project is None or can_read_project(principal, ProjectAccess(project, org,
                                                                                world.projects[project][1]))

        owned = {i for i, (owner, o, _, _) in facts.conversations.items() if (owner, o) == (user, org)}
        want = {i for i in owned if member and reads(facts.conversations[i][2])}
        n = len(facts.conversations)
        for conversation_id in facts.conversations:
            got = self.conversations.owned(user, org, conversation_id)
            expect("conversations.owned", got is not None, conversation_id in owned, f"{context}, c{conversation_id}")

            def open_it(c=conversation_id):
                return conversations.owned_conversation(
                    Workspace.for_member(self.records, self.directory, ws.principal, org), self.conversations, c)

            expect("owned_conversation", not not_found(open_it), conversation_id in want,
                   f"{context}, c{conversation_id}")
        if not member:
            return
        listed, cursor = [], None
        while True:
            page = self.conversations.list_owned(user, org, conversations.readable_project_ids(ws), cursor=cursor,
                                                 limit=PAGE)
            listed += [c.id for c in page.items]
            if page.next_cursor is None:
                break
            assert len(page.items) == PAGE, f"short conversation page before the last for {context}"
            cursor = page.next_cursor
        assert len(listed) == len(set(listed)), f"conversation list repeats one for {context}"
        expect("conversations.list_owned", set(listed), want, context, checks=n)

    # --- memory diffs -----------------------------------------------------------------------------

    def check_diffs(self, user: int, org: int, ws: Workspace, context: str) -> None:
        facts = self.facts
        in_org = {i for i, d in facts.diffs.items() if d[0].organisation_id == org}
        want = {i for i in in_org if self.can_read(user, facts.diffs[i][0])}
        n = len(facts.diffs)
        for diff_id in facts.diffs:
            got = self.diffs.readable(user, org, diff_id)
            expect("diffs.readable", got is not None, diff_id in want, f"{context}, diff {diff_id}")
        for statuses in (frozenset(), frozenset({DiffStatus.PENDING}), frozenset(DiffStatus) - {DiffStatus.PENDING}):
            listed, cursor = [], None
            while True:
                page = self.diffs.list_readable(user, org, statuses, cursor=cursor, limit=PAGE)
                listed += [d.id for d in page.items]
                if page.next_cursor is None:
                    break
                assert len(page.items) == PAGE, f"short diff page before the last for {context}"
                cursor = page.next_cursor
            assert len(listed) == len(set(listed)), f"diff list repeats a diff for {context}"
            wanted = {i for i in want if not statuses or DiffStatus(facts.diffs[i][1]) in statuses}
            expect("diffs.list_readable", set(listed), wanted, f"{context}, {sorted(statuses)}", checks=n)
        desk = MemoryDesk(ws, self.diffs)
        for diff_id in in_org:
            if diff_id not in want:
                expect("get_diff", not_found(lambda d=diff_id: get_diff(desk, d)), True, f"{context}, diff {diff_id}")
                continue
            named = facts.diffs[diff_id][3]
            items = get_diff(desk, diff_id).readable_items
            want_items = {facts.display_id(m) for m in named if self.can_read(user, self.world.records[m])}
            expect("get_diff.readable_items", set(items), want_items, f"{context}, diff {diff_id}",
                   checks=max(1, len(named)))

    # --- tickets: links, comments, activity ----------------------------------------------------------

    def check_tickets(self, user: int, org: int, ws: Workspace, readable: set[int], in_org: set[int],
                      context: str) -> None:
        facts = self.facts
        for ticket in (t for t in facts.of("ticket") if t in in_org):
            mine = {i: link for i, link in facts.links.items() if ticket in link[:2]}
            want = {(i, s == ticket, t if s == ticket else s) for i, (s, t, _) in mine.items()
                    if (t if s == ticket else s) in readable}
            got = {(link.id, link.outgoing, link.other.id) for link in self.links.readable(user, org, ticket)}
            expect("links.readable", got, want, f"{context}, ticket {ticket}", checks=max(1, len(mine)))
            for link_id in mine:
                got_one = {x.id for x in self.links.readable(user, org, ticket, link_id=link_id)}
                expect("links.readable(link_id)", got_one, {link_id} & {w[0] for w in want},
                       f"{context}, ticket {ticket}, link {link_id}")
            display_id = facts.display_id(ticket)
            if ticket not in readable:
                for path, call in (
                    ("list_links", lambda d=display_id: tickets.list_links(ws, self.links, d)),
                    ("list_comments", lambda d=display_id: tickets.list_comments(ws, self.comments, d)),
                    ("activity_log", lambda d=display_id: tickets.activity_log(ws, self.activity, d)),
                ):
                    expect(path, not_found(call), True, f"{context}, unreadable ticket {ticket}")
                continue
            got = {(x.id, x.outgoing, x.other.id) for x in tickets.list_links(ws, self.links, display_id)}
            expect("list_links", got, want, f"{context}, ticket {ticket}", checks=max(1, len(mine)))
            got = [c.id for c in tickets.list_comments(ws, self.comments, display_id)]
            expect("list_comments", got, facts.comments[ticket], f"{context}, ticket {ticket}")
            got = [a.id for a in tickets.activity_log(ws, self.activity, display_id)]
            expect("activity_log", got, facts.activity[ticket], f"{context}, ticket {ticket}")
        self.check_one_comment(ws, readable, in_org, context)
        # Readable from another organisation's point of view: nothing at all.
        for ticket in (t for t in facts.of("ticket") if t not in in_org):
            expect("links.readable(other org)", self.links.readable(user, org, ticket), [], f"{context}, {ticket}")

    def check_one_comment(self, ws: Workspace, readable: set[int], in_org: set[int], context: str) -> None:
        facts = self.facts
        every = [c for ids in facts.comments.values() for c in ids]
        never_made = max(every, default=0) + 1
        for record in (r for r in facts.of("ticket") + facts.of("doc") if r in in_org):
            display_id = facts.display_id(record)
            shown = facts.comments.get(record, []) if record in readable else []
            for comment_id in [*every, never_made]:
                try:
                    got = tickets.readable_comment(ws, self.comments, display_id, comment_id).id
                except NotFound:
                    got = None
                expect("readable_comment", got, comment_id if comment_id in shown else None,
                       f"{context}, {display_id}, comment {comment_id}")

    # --- docs: revisions, tree, ancestors, breadcrumbs ------------------------------------------------------

    def check_docs(self, user: int, org: int, ws: Workspace, readable: set[int], in_org: set[int], member: bool,
                   context: str) -> None:
        facts = self.facts
        doc_ids = [d for d in facts.of("doc") if d in in_org]
        readable_docs = {d for d in doc_ids if d in readable}
        n = len(doc_ids)
        nodes = self.tree.readable_docs(user, org, None)
        expect("tree.readable_docs", {x.summary.id for x in nodes}, readable_docs, context, checks=n)
        expect("tree.readable_docs(parent)", {x.summary.id: x.parent_id for x in nodes},
               {d: facts.parent[d] for d in readable_docs}, context, checks=n)
        if not member:
            expect("doc_tree", not_found(lambda: docs.doc_tree(ws, self.tree, None)), True, context, checks=n)
            expect("doc_branches", not_found(lambda: docs.doc_branches(ws, self.tree, None)), True, context, checks=n)
        else:
            self.check_branches(ws, doc_ids, readable_docs, None, context)
            expect("doc_tree", forest(docs.doc_tree(ws, self.tree, None)),
                   {d: facts.parent[d] if facts.parent[d] in readable_docs else None for d in readable_docs},
                   context, checks=n)
            for project, (project_org, _) in self.world.projects.items():
                if project_org != org:
                    continue
                scope = Scope.project(org, project)
                key = f"P{project}"
                if not self.can_read(user, scope):
                    expect("doc_tree(project)", not_found(lambda k=key: docs.doc_tree(ws, self.tree, k)), True,
                           f"{context}, project {project}")
                    continue
                in_project = {d for d in readable_docs if self.world.records[d] == scope}
                expect("doc_tree(project)", forest(docs.doc_tree(ws, self.tree, key)),
                       {d: facts.parent[d] if facts.parent[d] in in_project else None for d in in_project},
                       f"{context}, project {project}", checks=n)
                self.check_branches(ws, doc_ids, in_project, key, f"{context}, project {project}")
        for doc in doc_ids:
            chain = ancestors_of(facts, doc)
            got = [(a.id, a.summary.id if a.summary else None) for a in self.tree.ancestors(user, org, doc)]
            expect("tree.ancestors", got, [(a, a if a in readable else None) for a in chain],
                   f"{context}, doc {doc}", checks=max(1, len(chain)))
            display_id = facts.display_id(doc)
            if doc not in readable_docs or not member:
                for path, call in (
                    ("list_revisions", lambda d=display_id: docs.list_revisions(ws, self.revisions, d)),
                    ("breadcrumbs", lambda d=display_id: docs.breadcrumbs(ws, self.tree, d)),
                    ("revision_version", lambda d=display_id: revisions.version_of(ws, self.revisions, d, 1)),
                    ("revision_current", lambda d=display_id: revisions.version_of(ws, self.revisions, d, 3)),
                    ("revision_compare", lambda d=display_id: revisions.compare(ws, self.revisions, d, 1, None)),
                ):
                    expect(path, not_found(call), True, f"{context}, unreadable doc {doc}")
                continue
            got = [r.version for r in docs.list_revisions(ws, self.revisions, display_id)]
            expect("list_revisions", got, sorted(facts.revisions[doc], reverse=True), f"{context}, doc {doc}")
            kept = {v: revisions.version_of(ws, self.revisions, display_id, v)[1].title for v in facts.revisions[doc]}
            expect("revision_version", kept, {v: f"old title {doc}.{v}" for v in facts.revisions[doc]},
                   f"{context}, doc {doc}", checks=max(1, len(kept)))
            expect("revision_current", revisions.version_of(ws, self.revisions, display_id, 3)[1].title,
                   facts.title(doc), f"{context}, doc {doc}")
            if facts.revisions[doc]:
                diff = revisions.compare(ws, self.revisions, display_id, 1, None)[1]
                expect("revision_compare", (diff.old.title, diff.new.title), (f"old title {doc}.1", facts.title(doc)),
                       f"{context}, doc {doc}")
            crumbs = [c for c in docs.breadcrumbs(ws, self.tree, display_id) if c.kind == "doc"][:-1]
            want = [(facts.title(a), facts.display_id(a)) if a in readable else (docs.HIDDEN, None)
                    for a in reversed(chain)]
            expect("breadcrumbs", [(c.title, c.display_id) for c in crumbs], want, f"{context}, doc {doc}",
                   checks=max(1, len(chain)))


    def check_branches(self, ws: Workspace, doc_ids: list[int], shown: set[int], key: str | None,
                       context: str) -> None:
        """``docs.doc_branches`` (the sidebar's tree, one level per request): the top and each shown doc's
        sub-pages are exactly ``doc_tree``'s (with whether each has any); any other doc is NotFound."""
        facts = self.facts
        under = {d: facts.parent[d] if facts.parent[d] in shown else None for d in shown}

        def level(parent: int | None) -> set[tuple[int, bool]]:
            return {(d, any(under[c] == d for c in shown)) for d in shown if under[d] == parent}

        def got(parent=None) -> set[tuple[int, bool]]:
            return {(b.summary.id, b.has_children) for b in docs.doc_branches(ws, self.tree, key, parent)}

        expect("doc_branches", got(), level(None), context, checks=max(1, len(shown)))
        for doc in doc_ids:
            display_id = facts.display_id(doc)
            if doc in shown:
                expect("doc_branches(doc)", got(display_id), level(doc), f"{context}, doc {doc}")
            else:
                expect("doc_branches(doc)", not_found(lambda d=display_id: got(d)), True, f"{context}, doc {doc}")


def ancestors_of(facts: Facts, doc: int) -> list[int]:
    chain, parent = [], facts.parent[doc]
    while parent is not None:
        chain.append(parent)
        parent = facts.parent[parent]
    return chain


def forest(roots: list[docs.TreeNode]) -> dict[int, int | None]:
    """Each shown page -> the page it is shown under (None at the top); no page shown twice."""
    placed: dict[int, int | None] = {}

    def walk(node: docs.TreeNode, parent: int | None) -> None:
        assert node.summary.id not in placed, f"DOC-{node.summary.id} shown twice"
        placed[node.summary.id] = parent
        for child in node.children:
            walk(child, node.summary.id)

    for root in roots:
        walk(root, None)
    return placed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS, data=st.data())
def test_every_later_read_path_returns_exactly_what_the_policy_allows(leak_engine, world, revocations, data):
    facts = Facts(world, data)
    with leak_engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            facts.insert(conn)
            checker = Checker(conn, facts)
            checker.run()
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
            checker.run()  # the very next statements see every revocation
            STATS["worlds"] += 1
        finally:
            transaction.rollback()
