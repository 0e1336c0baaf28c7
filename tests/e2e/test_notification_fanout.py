"""Telling many people costs the same few statements as telling a few (``Notifications.deliver_many``): a deployer
with a 200-member group can grant it a project without the granting transaction running hundreds of statements.
Through the real composition root on PostgreSQL, a group grant put (and removed) for a group of 10 and for a group
of 200 members runs the same number of statements, and every member is told."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.suite_figures import say
from tow_adapters.postgres.directory import PgDirectory
from tow_core.access import OrgRole, Visibility
from tow_core.identity import Project, ProjectStatus, Session, WorkflowMode
from tow_core.notifications import MAX_GROUP_TOLD
from tow_core.unit_of_work import SessionCredential
from tow_http.bootstrap import use_cases

SMALL, LARGE = 10, MAX_GROUP_TOLD


class Organisation:
    """Acme: Ada owns it; two restricted projects; a group of ``SMALL`` and one of ``LARGE`` members."""

    def __init__(self, engine: sa.Engine) -> None:
        with engine.begin() as conn:
            directory = PgDirectory(conn)
            self.id = directory.add_organisation("acme", WorkflowMode.ORGANIZATION).id
            self.ada = directory.add_user("ada@example.com", "Ada", None, server_admin=False).id
            directory.set_membership(self.id, self.ada, OrgRole.OWNER)
            token = secrets.token_hex(16)
            directory.add_session(Session(token, self.ada, self.id, datetime.now(UTC) + timedelta(days=1)))
            self.credential = SessionCredential(token)
            self.groups = {size: self._group(directory, size) for size in (SMALL, LARGE)}
            self.projects = {size: directory.add_project(Project(0, self.id, f"P{size}", f"Project {size}", "", None,
                                                                 Visibility.RESTRICTED, ProjectStatus.ACTIVE)).id
                             for size in (SMALL, LARGE)}

    def _group(self, directory: PgDirectory, size: int) -> int:
        group = directory.add_group(self.id, f"group of {size}")
        for n in range(size):
            user = directory.add_user(f"member-{size}-{n}@example.com", f"Member {n}", None, server_admin=False).id
            directory.set_membership(self.id, user, OrgRole.MEMBER)
            directory.add_group_member(group.id, user)
        return group.id


@contextmanager
def counting(engine: sa.Engine) -> Iterator[list[str]]:
    """The statements run on ``engine`` inside the block."""
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def test_a_group_grant_runs_as_many_statements_for_200_members_as_for_10(make_container, request):
    container = make_container()
    engine = container.engine()
    acme = Organisation(engine)
    projects = use_cases(container.services())["projects"]

    def grant_then_remove(size: int) -> tuple[int, int]:
        with counting(engine) as put:
            grant = projects.put_grant(acme.credential, acme.id, acme.projects[size], role="viewer",
                                       group_id=acme.groups[size])
        with counting(engine) as removed:
            projects.remove_grant(acme.credential, acme.id, acme.projects[size], grant.id)
        return len(put), len(removed)

    (put_small, removed_small), (put_large, removed_large) = grant_then_remove(SMALL), grant_then_remove(LARGE)
    with engine.connect() as conn:
        told = dict(conn.execute(sa.text(
            "SELECT gm.group_id, count(*) FROM notifications n JOIN group_members gm ON gm.user_id = n.user_id "
            "WHERE n.kind = 'access' GROUP BY gm.group_id")).all())
    say(request.config, f"group grant notifications: put {put_small} statements for {SMALL} members, {put_large} for "
                        f"{LARGE}; removed {removed_small} and {removed_large}")
    assert told == {acme.groups[SMALL]: 2 * SMALL, acme.groups[LARGE]: 2 * LARGE}  # put and removed: each told twice
    assert (put_large, removed_large) == (put_small, removed_small)
