"""The one SQL visibility filter, generated from the core rule table (SPEC §2 "One predicate").

``tow_core.access.READ_RULES`` / ``WRITE_RULES`` say which conditions grant each scope kind. Here each
(scope kind, condition) pair has one SQL generator: a SELECT of the ``(organisation_id, scope_kind,
scope_ref)`` triples that the condition grants to ``:principal_id``. The UNION of the generators the
rule table names is the set of scopes the principal can read (or write); a record is visible iff
its own triple is in that set. Building the SQL fails loudly if the rule table names a pair with no
generator, so the two can never silently drift apart, and a differential property test
(tests/contract/test_visibility_differential.py) checks they agree on random worlds.

Cost: every generator starts from the principal's own memberships, group memberships and grants
(all indexed by user id), and records are then probed by their ``(organisation_id, scope_kind,
scope_ref)`` index, so the work grows with what the principal can see, not with invisible rows.
Nothing is cached: a revoked grant is gone on the very next statement.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from tow_core.access import READ_RULES, WRITE_RULES, Condition, ProjectRole, Scope, ScopeKind

PRINCIPAL_PARAM = "principal_id"

# Active memberships of the principal: deny by default (SPEC §2) — no membership, nothing.
_MY_MEMBERSHIPS = (
    "SELECT m.organisation_id, m.role FROM memberships m JOIN users u ON u.id = m.user_id "
    f"WHERE m.user_id = :{PRINCIPAL_PARAM} AND u.is_active"
)
_MANAGER_ROLES = "('owner', 'admin')"


def _roles_sql(roles: list[ProjectRole]) -> str:
    return "(" + ", ".join(f"'{role.value}'" for role in roles) + ")"


def _project_grant(roles: list[ProjectRole]) -> str:
    """Projects where the principal's direct grant or a grant to one of its groups (of the same
    organisation) has one of ``roles``; "highest of direct and group grants" falls out of the union.

    Two branches, each starting from the principal's own rows — direct grants by
    ``project_grants_user_idx``, group grants from ``group_members_user_idx`` then
    ``project_grants_group_idx`` — rather than one ``user_id = … OR group_id IN (…)`` test, which no index
    serves: PostgreSQL then read every grant of the organisation's projects (measured: 7 ms of a 3,000-record
    search with 1,000 projects and 4,700 grants, growing with everybody's grants)."""
    return (
        "SELECT p.organisation_id, 'project', p.id FROM project_grants pg "
        "JOIN projects p ON p.id = pg.project_id "
        "JOIN my_memberships mm ON mm.organisation_id = p.organisation_id "
        f"WHERE pg.user_id = :{PRINCIPAL_PARAM} AND pg.role IN {_roles_sql(roles)}\n"
        "UNION\n"
        "SELECT p.organisation_id, 'project', p.id FROM group_members gm "
        "JOIN groups g ON g.id = gm.group_id "
        "JOIN project_grants pg ON pg.group_id = gm.group_id "
        "JOIN projects p ON p.id = pg.project_id AND p.organisation_id = g.organisation_id "
        "JOIN my_memberships mm ON mm.organisation_id = p.organisation_id "
        f"WHERE gm.user_id = :{PRINCIPAL_PARAM} AND pg.role IN {_roles_sql(roles)}"
    )


SCOPE_GENERATORS: Mapping[tuple[ScopeKind, Condition], str] = {
    (ScopeKind.ORGANISATION, Condition.IS_MEMBER): (
        "SELECT mm.organisation_id, 'organisation', mm.organisation_id FROM my_memberships mm"
    ),
    (ScopeKind.GROUP, Condition.IN_GROUP): (
        "SELECT g.organisation_id, 'group', g.id FROM my_memberships mm "
        "JOIN groups g ON g.organisation_id = mm.organisation_id "
        f"JOIN group_members gm ON gm.group_id = g.id AND gm.user_id = :{PRINCIPAL_PARAM}"
    ),
    (ScopeKind.GROUP, Condition.IS_ORG_MANAGER): (
        "SELECT g.organisation_id, 'group', g.id FROM my_memberships mm "
        f"JOIN groups g ON g.organisation_id = mm.organisation_id WHERE mm.role IN {_MANAGER_ROLES}"
    ),
    (ScopeKind.PROJECT, Condition.IS_ORG_MANAGER): (
        "SELECT p.organisation_id, 'project', p.id FROM my_memberships mm "
        f"JOIN projects p ON p.organisation_id = mm.organisation_id WHERE mm.role IN {_MANAGER_ROLES}"
    ),
    (ScopeKind.PROJECT, Condition.PROJECT_OPEN): (
        "SELECT p.organisation_id, 'project', p.id FROM my_memberships mm "
        "JOIN projects p ON p.organisation_id = mm.organisation_id WHERE p.visibility = 'open'"
    ),
    (ScopeKind.PROJECT, Condition.PROJECT_GRANT_READS): _project_grant([r for r in ProjectRole if r.reads]),
    (ScopeKind.PROJECT, Condition.PROJECT_GRANT_WRITES): _project_grant([r for r in ProjectRole if r.writes]),
    (ScopeKind.USER, Condition.IS_SCOPE_USER): (
        f"SELECT mm.organisation_id, 'user', CAST(:{PRINCIPAL_PARAM} AS bigint) FROM my_memberships mm"
    ),
}


def scopes_sql(rules: Mapping[ScopeKind, tuple[Condition, ...]], *, principal: str | None = None) -> str:
    """SELECT of every (organisation_id, scope_kind, scope_ref) the rules grant to :principal_id — or, with
    ``principal``, to the user id that SQL expression names (a column of an outer query: the same rules asked
    for many users in one statement)."""
    parts = [SCOPE_GENERATORS[(kind, condition)] for kind in ScopeKind for condition in rules[kind]]
    union = "\nUNION\n".join(parts)
    sql = (
        f"WITH my_memberships AS ({_MY_MEMBERSHIPS})\n"
        f"SELECT * FROM (\n{union}\n) AS granted(organisation_id, scope_kind, scope_ref)"
    )
    return sql if principal is None else sql.replace(f":{PRINCIPAL_PARAM}", f"({principal})")


READABLE_SCOPES_SQL = scopes_sql(READ_RULES)
WRITABLE_SCOPES_SQL = scopes_sql(WRITE_RULES)


def visible_predicate(alias: str, *, write: bool = False, principal: str | None = None) -> str:
    """A WHERE-clause predicate: the row ``alias`` (with organisation_id, scope_kind, scope_ref
    columns) is readable (or writable) by :principal_id — bind ``principal_id`` when executing — or, with
    ``principal``, by the user that SQL expression names (``visible_predicate("r", principal="c.user_id")``:
    "which of these users read r" in one statement, each user through the same rules)."""
    if principal is None:
        scopes = WRITABLE_SCOPES_SQL if write else READABLE_SCOPES_SQL
    else:
        scopes = scopes_sql(WRITE_RULES if write else READ_RULES, principal=principal)
    return (
        f"(({alias}.organisation_id, {alias}.scope_kind, {alias}.scope_ref) IN "
        f"(SELECT organisation_id, scope_kind, scope_ref FROM ({scopes}) AS visible_scopes))"
    )


def readable_scope_arrays_sql(org_param: str) -> str:
    """One row: for each scope kind, the array of ``scope_ref`` the principal can read in the organisation
    bound to ``:org_param`` — the rows of ``READABLE_SCOPES_SQL``, grouped. Meant for a ``MATERIALIZED`` CTE
    that ``in_scope_arrays`` reads: the readable set is then computed once per statement (never across
    statements: a revocation holds from the next one), and testing a row is a few array comparisons."""
    arrays = ", ".join(
        f"COALESCE(array_agg(scope_ref) FILTER (WHERE scope_kind = '{kind.value}'), CAST('{{}}' AS bigint[])) "
        f"AS {kind.value}_refs" for kind in ScopeKind)
    return f"SELECT {arrays} FROM ({READABLE_SCOPES_SQL}) AS readable WHERE organisation_id = :{org_param}"


def _kind_refs(kind: ScopeKind, arrays_cte: str) -> str:
    # The CAST makes the scalar sub-select an array operand (``= ANY((SELECT …))`` would read as a sub-query);
    # a scalar sub-select of the CTE is an InitPlan, evaluated once per statement.
    return f"CAST((SELECT {kind.value}_refs FROM {arrays_cte}) AS bigint[])"


def in_scope_arrays(alias: str, arrays_cte: str, org_param: str) -> str:
    """A WHERE-clause predicate: the row ``alias`` (organisation_id, scope_kind, scope_ref) is in the readable
    set that ``readable_scope_arrays_sql`` put in the CTE ``arrays_cte`` — the same set as ``visible_predicate``.
    It stays a filter on the scan that holds the row, never a join, and no B-tree serves it (a CASE): an
    ordered index scan (HNSW) tests each row as it streams, and the planner cannot trade that scan for one
    of the scope index."""
    whens = " ".join(f"WHEN '{kind.value}' THEN {alias}.scope_ref = ANY({_kind_refs(kind, arrays_cte)})"
                     for kind in ScopeKind)
    return f"({alias}.organisation_id = :{org_param} AND CASE {alias}.scope_kind {whens} END)"


def scope_array_branches(alias: str, arrays_cte: str, org_param: str) -> list[str]:
    """The predicate of ``in_scope_arrays`` split by scope kind, for a UNION ALL of one scan per kind: each
    one is an index condition on (organisation_id, scope_kind, scope_ref), so a scan reads only readable
    rows and a LIMIT above stops it early (an OR of the kinds would need a bitmap, which reads all first)."""
    return [f"{alias}.organisation_id = :{org_param} AND {alias}.scope_kind = '{kind.value}' "
            f"AND {alias}.scope_ref = ANY({_kind_refs(kind, arrays_cte)})" for kind in ScopeKind]


class PgVisibility:
    """Answers "which scopes may this principal read/write" in SQL, from the one rule table."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def readable_scopes(self, principal_id: int, *, write: bool = False) -> frozenset[Scope]:
        sql = WRITABLE_SCOPES_SQL if write else READABLE_SCOPES_SQL
        with self._engine.connect() as conn:
            rows = conn.execute(sa.text(sql), {PRINCIPAL_PARAM: principal_id}).all()
        return frozenset(Scope(ScopeKind(kind), org, ref) for org, kind, ref in rows)
