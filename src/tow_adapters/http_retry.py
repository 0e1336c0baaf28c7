"""The one retry policy for calls to AI providers (OpenAI, Exa), shared by their adapters.

Every HTTP attempt leaves exactly one egress-ledger row — written ``in_flight`` before the attempt and
completed after it — so retries are ours, never an SDK's hidden ones. A retryable failure (429, 5xx,
timeouts, connection errors: the adapter decides and says so in its ``Attempt``) is retried with
exponential backoff and "equal jitter", or after the server's ``Retry-After`` when it sent one; a server
asking for a longer wait than ``max_retry_after_seconds`` gets its error raised at once rather than a
request blocked for minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from tow_core.egress import EgressLedger
from tow_core.errors import TowError


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one HTTP attempt did, for the ledger and the retry decision."""

    outcome: str
    request_bytes: int
    response_bytes: int
    retryable: bool = False
    retry_after_seconds: float | None = None
    error: TowError | None = None
    result: Any = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 4
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 20.0
    max_retry_after_seconds: float = 60.0

    def delay(self, attempt_number: int, retry_after: float | None, jitter: float) -> float | None:
        """Seconds to wait before the next attempt, or None when the server asks for longer than we wait.
        ``jitter`` is in [0, 1)."""
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after_seconds else None
        ceiling = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (attempt_number - 1))
        return ceiling / 2 + jitter * ceiling / 2  # spread the retries of many clients, keep a floor


def call_with_retries(attempt_once: Callable[[], Attempt], *, begin: Callable[[], int], ledger: EgressLedger,
                      policy: RetryPolicy, sleep: Callable[[float], None], jitter: Callable[[], float]) -> Any:
    """Run ``attempt_once`` until it succeeds, fails for good or the attempts run out; ``begin`` writes
    the attempt's ``in_flight`` ledger row and returns its id. Returns the successful attempt's result."""
    for attempt_number in range(1, policy.max_attempts + 1):
        entry_id = begin()
        started = time.monotonic()
        attempt = attempt_once()
        ledger.complete(entry_id, request_bytes=attempt.request_bytes, response_bytes=attempt.response_bytes,
                        duration_ms=round((time.monotonic() - started) * 1000), outcome=attempt.outcome)
        if attempt.error is None:
            return attempt.result
        if not attempt.retryable or attempt_number == policy.max_attempts:
            raise attempt.error
        delay = policy.delay(attempt_number, attempt.retry_after_seconds, jitter())
        if delay is None:
            raise attempt.error
        sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` (OpenAI's), else ``Retry-After`` in seconds or as an HTTP date (RFC 9110 §10.2.3)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
