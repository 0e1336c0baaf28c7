"""The OpenAPI document says what the server does: schemathesis over every operation, three ways.

The real app is built through the composition root on the embedded PostgreSQL (an organisation with an
owner who is also server admin, two plain members and three projects: tests/e2e/org_world.py), its
document is loaded from /api/docs/openapi.json, and every operation gets schemathesis' examples, coverage
(boundary values, wrong types, missing fields, undeclared methods) and fuzzing phases with drawn path
parameters, then examples and fuzzing again with its path naming resources that exist (a doc, a ticket,
a group, an upload, ...), as the owner, as a plain member and without a cookie. Asserted for each role: no
response >= 500, none outside its declared schema, no undeclared status code, no schema-valid request
refused as bad input, no schema-invalid one accepted, 405s and OPTIONS with the right ``Allow``, no 2xx
without the session cookie; and as the member, no 2xx on an operation the document marks
``x-tow-access`` (owners/admins, project managers, server admins).

Destructive operations: deleting runs after reading and changing, signing out last; before every
operation the callers get a fresh session and their roles back (``restore_world``).

The counts (cases, failures per check) are printed at the end of the run (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config._checks import (
    NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES,
    POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES,
    NegativeDataRejectionConfig,
    PositiveDataAcceptanceConfig,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.generation.overrides import Override
from schemathesis.specs.openapi import checks as openapi_checks
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

from tests.e2e.org_world import World
from tow_core import accounts
from tow_core.access import OrgRole
from tow_core.conversations import NewConversation
from tow_core.records import FIELD_SPECS

ROLES = ("owner", "member", "anonymous")

# Random cases per operation, role and pass. The coverage phase's deterministic cases (about 40 per
# operation) always run in full on top; with these, `make test` runs ~15,000 cases in ~2 minutes.
QUICK_EXAMPLES = 6
NIGHTLY_EXAMPLES = 100

# Input fields whose validity depends on what the document cannot state, so a schema-valid value may get 422:
# what exists or belongs here, what the server issued, another field of the request, or the target's state.
SEMANTIC_FIELDS = {
    "cursor": "only cursors the endpoint returned",
    "user_id": "must name a member of the organisation", "lead_user_id": "the same",
    "assignee_id": "the same", "owner_id": "the same",
    "parent_id": "a readable record of the same type, not below itself",
    "scope": "a sub-page lives in its parent's scope", "scope_id": "every scope kind but organisation needs its id",
    "version": "an update sends `version` or If-Match",
    "status": "which statuses exist depends on the record's type",
    "display_id": "the path names a record of another type (comments on a doc)",
    "upload_id": "the upload is already in use, or not an image",
    "operations": "a diff's operations together: targets at most once", "by": "one of `by` and `by_operation`",
    "by_operation": "the index of an earlier create operation", "base_version": "the item's current version",
    "items": "items of this organisation's memory", "target": "a ticket other than this one",
    "body": "a snapshot's text is editable only before activation",
    "current_password": "must be the account's current password (changing the email or the password)",
    "expires_in_days": "at most the server's `auth.token_max_days`, which the operator sets",
    "q": "search needs a word PostgreSQL's text search does not drop (stop words, punctuation)",
    **{name: "which fields a record takes depends on its type" for names in FIELD_SPECS.values() for name in names},
}


def declared_rules_only(ctx, response, case):
    """A schema-valid request refused with 422 must be refused for a rule the document cannot state."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    if case.method.upper() != case.operation.method.upper() or is_unexpected_http_status_case(case):
        return None
    field = response.json()["error"].get("field", "")
    if field not in SEMANTIC_FIELDS and not field.startswith("$"):  # `$...`: a path into an imported file
        raise AssertionError(f"schema-valid input refused with 422 on `{field}`: declare the rule in the document")
    return None


def negative_data_rejection(ctx, response, case):
    """schemathesis' check, less a false alarm about query arrays of strings (`?status=`): whatever is drawn for
    one, a number, an object or a single value, reaches the server as text in form style (OpenAPI 3.1
    §4.8.12.4), which is a valid element."""
    if _valid_as_sent(case):
        return None
    return openapi_checks.negative_data_rejection(ctx, response, case)


# 503 answers that are the server's configuration, documented on the operation, not a failure: this world runs
# without OPENAI_API_KEY, so starting a conversation answers `ai_not_configured` (tests/e2e/test_conversations_api.py
# covers it with AI configured).
CONFIGURATION_ANSWERS = frozenset({"ai_not_configured"})


def not_a_server_error_but_configuration(ctx, response, case):
    """schemathesis' check, less the 503 of a feature the operator has not configured."""
    if response.status_code == 503 and _error_code(response) in CONFIGURATION_ANSWERS:
        return None
    return not_a_server_error(ctx, response, case)


def _error_code(response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _valid_as_sent(case) -> bool:
    meta = case.meta
    if meta is None or not isinstance(case.query, dict) or any(
            component.mode.is_negative for location, component in meta.components.items()
            if location != ParameterLocation.QUERY):
        return False
    for name, value in case.query.items():
        parameter = case.operation.query.get(name)
        if parameter is None:
            return False
        schema = parameter.validation_schema
        strings = {"type": "array", "items": {"type": "string"}}
        if schema == strings or schema.get("oneOf", [None])[0] == strings:
            continue
        if not parameter.get_validator().is_valid(value):
            return False
    return True


# Every check that can fail against this server, with why the others are left out.
CHECKS = (
    declared_rules_only,
    not_a_server_error_but_configuration,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.positive_data_acceptance,  # a schema-valid request refused with 400/422: undeclared rule
    negative_data_rejection,  # a schema-invalid request accepted: the schema claims too much
    openapi_checks.missing_required_header,
    openapi_checks.unsupported_method,  # 405 with `Allow` (RFC 9110 §15.5.6) for undeclared methods
    openapi_checks.allow_header_conformance,  # OPTIONS: `Allow` lists exactly the documented methods
    openapi_checks.ignored_auth,  # a 2xx with the session cookie must become 401 without it
    # Not run: use_after_free, ensure_resource_availability and object_level_authorization need the
    # stateful phase and OpenAPI links, which this document does not declare (access across users and
    # revocation are proven by the leak suites, tests/contract/test_*leak*.py).
)

# operation label -> role -> counters; printed by pytest_terminal_summary in tests/conftest.py
CONFORMANCE_STATS: dict[str, dict] = {}

# Signing the caller out (or out of the organisation) is what these are for: they run last, and the
# caller's session and membership are restored before every operation anyway.
SIGNS_OUT = ("POST /api/auth/logout", "POST /api/auth/logout-everywhere")


@dataclass
class RoleRun:
    role: str
    cases: int = 0
    failures: Counter = field(default_factory=Counter)
    groups: Counter = field(default_factory=Counter)  # (check, operation, status) -> failures
    examples: dict[tuple[str, str, int], str] = field(default_factory=dict)
    member_successes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    operations: int = 0
    responses_5xx: int = 0
    responses_2xx: int = 0

    def fail(self, check: str, operation: str, status: int, text: str) -> None:
        self.failures[check] += 1
        self.groups[check, operation, status] += 1
        self.examples.setdefault((check, operation, status), text)


def mint_cookie(world: World, user_id: int) -> str:
    """A fresh signed session cookie, made the way sign-in makes it but without the throttled endpoint."""
    services = world.container.services()
    token = services.cookie_signer.new_token()
    with services.transaction() as stores:
        accounts.start_session(stores.directory, user=stores.directory.user(user_id),
                               token_hash=services.cookie_signer.token_hash(token), now=services.clock(),
                               lifetime=services.session_lifetime)
    return services.cookie_signer.sign(token)


def restore_world(world: World) -> None:
    """Undo what the previous operation's cases may have done to the callers: Ada owner and server admin
    again, Bob a plain member again (the fuzzer may have made Bob leave, an admin or a server admin)."""
    with world.container.services().transaction() as stores:
        stores.directory.set_server_admin(world.ada_id, True)
        stores.directory.set_server_admin(world.bob_id, False)
        stores.directory.set_membership(world.org, world.ada_id, OrgRole.OWNER)
        stores.directory.set_membership(world.org, world.bob_id, OrgRole.MEMBER)
        for user_id in (world.ada_id, world.bob_id):
            stores.directory.set_active(user_id, True)


def existing_resources(world: World) -> dict[str, object]:
    """One of everything a path can name, made by Ada in open places Bob reads and writes too: the second
    pass of every operation names these instead of drawn ids, to reach what answers a 2xx."""
    ada, base, org_scope = world.ada, world.base, {"kind": "organisation"}
    ops = world.scope("OPS")
    doc = world.create(ada, type="doc", scope=org_scope, title="Handbook", body="How we work")
    ticket = world.create(ada, type="ticket", scope=ops, title="Fix the build", body="See the handbook")
    other = world.create(ada, type="ticket", scope=ops, title="Release")
    world.create(ada, type="memory", scope=org_scope, title="We ship weekly", fields={"memory_type": "fact"})
    comment = made(ada.post(f"{base}/records/{ticket['display_id']}/comments", json={"body": "On it"}))
    link = made(ada.post(f"{base}/records/{ticket['display_id']}/links",
                         json={"kind": "blocks", "target": other["display_id"]}))
    diff = made(ada.post(f"{base}/memory-diffs", json={"scope": org_scope, "operations": [
        {"op": "create", "title": "We review on Fridays", "fields": {"memory_type": "fact"}}]}))
    group = made(ada.post(f"{base}/groups", json={"name": "Design"}))
    made(ada.put(f"{base}/groups/{group['id']}/members/{world.bob_id}"))
    invite = made(ada.post(f"{base}/invites", json={"role": "member"}))["invite"]
    upload = made(ada.post(f"{base}/uploads", params={"filename": "notes.txt"}, content=b"quarterly numbers"))
    export = made(ada.post(f"{base}/exports", json={"kind": "member"}))
    grant = made(ada.get(f"{base}/projects/{world.projects['APP']}/grants"))[0]
    with world.container.services().transaction() as stores:  # starting one needs AI, which this world has not
        conversation = stores.conversations.create(
            NewConversation(world.ada_id, world.org, None, "Planning"), at=world.container.services().clock())
    return {"conversation_id": conversation.id, "org_id": world.org, "project_id": world.projects["OPS"], "group_id": group["id"],
            "user_id": world.bob_id, "invite_id": invite["id"], "grant_id": grant["id"], "diff_id": diff["id"],
            "comment_id": comment["id"], "link_id": link["id"], "upload_id": upload["id"],
            "export_id": export["id"], "doc": doc["display_id"], "ticket": ticket["display_id"]}


def made(response) -> dict:
    assert response.status_code < 300, response.text
    return response.json()


def pinned(operation, resources: dict[str, object]) -> dict[str, str]:
    """The existing resources ``operation``'s path names (a doc where it says docs, else a ticket)."""
    names = [p.name for p in operation.path_parameters]
    doc_or_ticket = resources["doc"] if "/docs/" in operation.path else resources["ticket"]
    found = {name: resources.get(name, doc_or_ticket if name == "display_id" else None) for name in names}
    return {name: str(value) for name, value in found.items() if value is not None}


def configure(schema, role: str) -> None:
    generation = {
        # The signed-in roles send their own session cookie; without one, schemathesis draws random ones (all
        # of which must be refused) and leaves it out (which must be refused too).
        "with_security_parameters": role == "anonymous",
        # U+0000 is refused in every text input (PostgreSQL cannot store it), which the document does not
        # repeat on every string; the hostile-input tests pin that refusal.
        "allow_x00": False,
    }
    schema.config.generation.update(**generation)
    # 422 is TOW's answer to well-formed input a rule refuses (SPEC §10), so schemathesis' check, which only
    # allows 401/403/404/409 besides success, counts it as accepted; `declared_rules_only` below then fails
    # every such 422 whose rule the document could have stated.
    schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig.from_dict(
        {"expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "422"]})
    # A body over the request size limit (runtime.max_request_body_bytes) is refused before it is decoded.
    schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig.from_dict(
        {"expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]})


def operations(schema) -> list:
    """Deleting comes after reading and changing (a deleted doc answers 404 to the rest), signing out last."""
    found = [result.ok() for result in schema.get_all_operations()]
    return sorted(found, key=lambda op: (op.label in SIGNS_OUT, op.method.upper() == "DELETE", op.label))


def restricted_access(operation) -> str | None:
    return operation.definition.raw.get("x-tow-access")


def settings(max_examples: int, derandomize: bool) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples, derandomize=derandomize, database=None, deadline=None, print_blob=False,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: every case counts once
        suppress_health_check=list(hypothesis.HealthCheck),
    )


def run_operation(operation, run: RoleRun, jar: dict[str, str], budget: hypothesis.settings, results: list,
                  path: dict[str, str] | None = None) -> None:
    """Every phase with drawn path parameters; with ``path`` (existing resources) examples and fuzzing only:
    the coverage phase's boundary and negative values are about the parameters ``path`` pins."""
    def test(case: schemathesis.Case) -> None:
        response = case.call(cookies=jar)
        run.cases += 1
        run.responses_5xx += response.status_code >= 500
        run.responses_2xx += 200 <= response.status_code < 300
        results.clear()  # filled by the schema's after_validate hook, one result per check
        with contextlib.suppress(FailureGroup):
            case.validate_response(response, checks=list(CHECKS), transport_kwargs={"cookies": jar})
        for result in results:
            if result.failure is not None:
                run.fail(result.name, operation.label, response.status_code,
                         f"{case.method} {case.formatted_path}: {result.failure.title}; "
                         f"{str(result.failure.message)[:240]} | sent {_sent(case)[:300]} | got {response.text[:300]}")
        if (run.role == "member" and restricted_access(operation) and 200 <= response.status_code < 300
                and case.method.upper() == operation.method.upper()):
            run.member_successes.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

    modes = [HypothesisTestMode.EXAMPLES, HypothesisTestMode.FUZZING] if path else list(HypothesisTestMode)
    config = HypothesisTestConfig(project=operation.schema.config, modes=modes, settings=budget,
                                  override=Override(path_parameters=path or {}))
    create_test(operation=operation, test_func=test, config=config)()


def conformance_run(world: World, role: str, max_examples: int, derandomize: bool) -> RoleRun:
    app = world.container.app()
    schema = schemathesis.openapi.from_asgi("/api/docs/openapi.json", app)
    configure(schema, role)
    results: list = []
    schema.hook("after_validate")(lambda context, case, response, checked: results.extend(checked))
    name = world.container.services().settings.security.session_cookie_name
    user_id = {"owner": world.ada_id, "member": world.bob_id}.get(role)
    run = RoleRun(role)
    resources = existing_resources(world)
    started = time.monotonic()
    for operation in operations(schema):
        run.operations += 1
        for path in (None, pinned(operation, resources)):
            restore_world(world)
            jar = {name: mint_cookie(world, user_id)} if user_id is not None else {}
            run_operation(operation, run, jar, settings(max_examples, derandomize), results, path)
    run.seconds = time.monotonic() - started
    return run


def _sent(case) -> str:
    return repr({"query": case.query, "body": case.body, "headers": case.headers}) if case.body is not None or \
        case.query or case.headers else ""


def _report(run: RoleRun) -> str:
    lines = [f"{run.role}: {run.cases} cases, failures {dict(run.failures) or 0}"]
    for (check, operation, status), count in sorted(run.groups.items()):
        example = run.examples[check, operation, status].replace("\n", " | ")
        lines.append(f"  {check} {operation} -> {status} x{count}: {example}")
    if run.member_successes:
        lines.append(f"  member 2xx on restricted operations: {run.member_successes[:10]}")
    return "\n".join(lines)


@pytest.fixture
def world(make_container) -> Iterator[World]:
    yield World(make_container())


@pytest.mark.parametrize("role", ROLES)
def test_openapi_conformance(world, role):
    check_conformance(world, role, QUICK_EXAMPLES, derandomize=True)


@pytest.mark.nightly
@pytest.mark.parametrize("role", ROLES)
def test_openapi_conformance_nightly(world, role, request):
    """Random (not derandomised) and many more cases per operation: new inputs every night."""
    if not request.config.getoption("--nightly"):
        pytest.skip("nightly run: make nightly")
    check_conformance(world, role, NIGHTLY_EXAMPLES, derandomize=False)


def check_conformance(world: World, role: str, max_examples: int, *, derandomize: bool) -> None:
    run = conformance_run(world, role, max_examples, derandomize)
    CONFORMANCE_STATS[role if derandomize else f"{role}, nightly"] = {"cases": run.cases, "failures": dict(run.failures), "seconds": run.seconds,
                               "member_successes": len(run.member_successes), "operations": run.operations,
                               "responses_5xx": run.responses_5xx, "responses_2xx": run.responses_2xx}
    assert not run.failures and not run.member_successes, _report(run)
