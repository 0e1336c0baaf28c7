"""Asking for a password reset tells nobody whether an address has an account, not by its answer and not by its
timing (issue 19, OWASP Forgot Password Cheat Sheet): on the real database the request runs the very same
statements for an account's address as for an unknown one (the lookup and the email happen later, in the job
worker), and the ratio of their times, measured pair by pair in the same run, stays near 1."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import sqlalchemy as sa
from litestar.testing import TestClient

from tests.suite_figures import say
from tow_core.password_reset import NEUTRAL_ANSWER, ResetThrottle
from tow_http.bootstrap import use_cases

ACCOUNT, NOBODY = "ada@example.com", "nobody@example.com"
PAIRS = 40


def test_asking_runs_the_same_statements_and_takes_as_long_for_an_account_as_for_nobody(make_container, request):
    container = make_container()
    client = TestClient(container.app(), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)
    assert client.post("/api/auth/register-first", json={"email": ACCOUNT, "display_name": "Ada",
                                                         "password": "correct horse battery",
                                                         "organisation_name": "Acme"}).status_code == 201
    # Generous limits: the throttle's own refusals are the same for every address (tests/unit/test_password_reset.py).
    cases = replace(use_cases(container.services())["password_reset"],
                    throttle=ResetThrottle(max_per_address=10_000, max_per_client=10_000))
    statements: list[str] = []

    def ask(address: str) -> tuple[list[str], float]:
        statements.clear()
        started = time.perf_counter()
        assert cases.request_reset(email=address, client_ip="198.51.100.7") == NEUTRAL_ANSWER
        return list(statements), time.perf_counter() - started

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    engine = container.engine()
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        for address in (ACCOUNT, NOBODY):  # warm both paths (statement caches, pool)
            ask(address)
        account_statements, _ = ask(ACCOUNT)
        nobody_statements, _ = ask(NOBODY)
        ratios = []
        for _ in range(PAIRS):
            ratios.append(ask(ACCOUNT)[1] / ask(NOBODY)[1])
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)

    assert account_statements == nobody_statements
    assert any("INSERT INTO jobs" in s for s in account_statements)
    assert not any("email_outbox" in s or "password_reset_tokens" in s for s in account_statements)
    ratio = statistics.median(ratios)
    say(request.config, f"password reset timing: {PAIRS} interleaved pairs, median time ratio account / unknown "
                        f"address {ratio:.2f}, {len(account_statements)} identical statements each")
    # Same statements, same work: only noise separates them; the old path (lookup, token, template and outbox
    # write for an account only) is what this would catch beyond noise.
    assert 0.75 <= ratio <= 1.33
