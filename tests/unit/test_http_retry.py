"""The shared retry policy of the AI provider adapters: which waits it chooses, when it gives up, and that
every attempt is one ledger row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.fake_egress import InMemoryEgressLedger
from tow_adapters.http_retry import Attempt, RetryPolicy, call_with_retries, retry_after_seconds
from tow_core.ai import EgressContext, EgressPurpose
from tow_core.egress import ProviderEndpoint, egress_entry
from tow_core.errors import DependencyUnavailable, InvalidInput, Throttled

POLICY = RetryPolicy(max_attempts=3, backoff_base_seconds=1.0, backoff_cap_seconds=3.0, max_retry_after_seconds=10)
ENDPOINT = ProviderEndpoint("exa", "http://127.0.0.1:1", "api.exa.ai")
CONTEXT = EgressContext(EgressPurpose.WEB_SEARCH, acting_user_id=1, organisation_id=1)


@pytest.mark.parametrize(("attempt", "retry_after", "jitter", "expected"), [
    (1, None, 0.0, 0.5), (1, None, 0.999, 0.9995), (2, None, 0.5, 1.5), (3, None, 1.0, 3.0), (9, None, 0.0, 1.5),
    (1, 7.0, 0.3, 7.0), (2, 10.0, 0.0, 10.0), (1, 10.5, 0.0, None),
])
def test_delays_back_off_with_a_floor_honour_retry_after_and_refuse_long_waits(attempt, retry_after, jitter, expected):
    delay = POLICY.delay(attempt, retry_after, jitter)
    assert delay == (pytest.approx(expected) if expected is not None else None)


def run(script: list[Attempt]) -> tuple[object, InMemoryEgressLedger, list[float]]:
    ledger, sleeps, answers = InMemoryEgressLedger(), [], iter(script)
    begin = lambda: ledger.record(egress_entry(ENDPOINT, "search", CONTEXT, request_bytes=0, response_bytes=0,  # noqa: E731
                                               duration_ms=0, outcome="in_flight"))
    try:
        result = call_with_retries(lambda: next(answers), begin=begin, ledger=ledger, policy=POLICY,
                                   sleep=sleeps.append, jitter=lambda: 0.0)
    except Exception as exc:  # noqa: BLE001 - the test inspects what was raised
        result = exc
    return result, ledger, sleeps


def test_retryable_failures_are_retried_until_success_one_row_each():
    throttled = Attempt("http_429", 10, 5, retryable=True, retry_after_seconds=2.0, error=Throttled("slow", retry_after_seconds=2))
    down = Attempt("http_503", 10, 5, retryable=True, error=DependencyUnavailable("down", retry_after_seconds=30))
    result, ledger, sleeps = run([throttled, down, Attempt("ok", 10, 99, result="answer")])
    assert result == "answer" and ledger.outcomes == ["http_429", "http_503", "ok"] and sleeps == [2.0, 1.0]
    assert [row.response_bytes for row in ledger.rows] == [5, 5, 99]


def test_a_permanent_failure_is_raised_at_once_and_exhaustion_raises_the_last_error():
    refused = InvalidInput("bad")
    result, ledger, sleeps = run([Attempt("http_400", 1, 1, error=refused)])
    assert result is refused and ledger.outcomes == ["http_400"] and sleeps == []
    down = [Attempt("connection_error", 1, 0, retryable=True, error=DependencyUnavailable(f"down {n}", retry_after_seconds=1))
            for n in range(3)]
    result, ledger, sleeps = run(down)
    assert result is down[2].error and ledger.outcomes == ["connection_error"] * 3 and sleeps == [0.5, 1.0]


def test_a_retry_after_longer_than_the_policy_waits_is_raised_without_waiting():
    too_long = Attempt("http_429", 1, 1, retryable=True, retry_after_seconds=3600, error=Throttled("x", retry_after_seconds=3600))
    result, ledger, sleeps = run([too_long, Attempt("ok", 1, 1, result="never")])
    assert result is too_long.error and sleeps == [] and len(ledger.rows) == 1


def test_retry_after_headers_in_milliseconds_seconds_and_http_dates():
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "4"}) == 4.0
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= retry_after_seconds({"retry-after": in_a_minute}) <= 60
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds({}) is None
