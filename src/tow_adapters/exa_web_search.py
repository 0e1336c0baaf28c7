"""ExaWebSearch: web search and page contents through exa-py, behind the core ``WebSearch`` port.

Calls go through exa-py's ``Exa.request`` with the JSON body built here (the same ``/search`` and
``/contents`` bodies ``Exa.search``/``Exa.get_contents`` send): that way the ledger's request byte count
is the exact body exa-py puts on the wire. The response byte count is the compact JSON of what came
back. The approved-provider rule is checked before anything is sent; every HTTP attempt leaves one ledger
row, written ``in_flight`` before the request and completed after it.

Retries follow the OpenAI gateway's policy (``tow_adapters.http_retry``): 429, 5xx, 408, timeouts and
connection errors are retried with exponential backoff and jitter. exa-py reports a non-2xx answer as a
``ValueError`` carrying only the status and the body — it drops the response headers — so an Exa
``Retry-After`` cannot be seen here and the backoff applies to every retry.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests
from exa_py import Exa
from exa_py.errors import ExaTimeoutError

from tow_adapters.http_retry import Attempt, RetryPolicy, call_with_retries
from tow_core.ai import EgressContext, WebPage, WebResult
from tow_core.egress import (
    OUTCOME_IN_FLIGHT,
    EgressLedger,
    ProviderEndpoint,
    egress_entry,
    is_approved,
    refusal,
)
from tow_core.errors import DependencyUnavailable, InvalidInput, NotFound, Throttled, TowError

EXA_PROVIDER = "exa"
EXA_OFFICIAL_HOST = "api.exa.ai"
SNIPPET_CHARACTERS = 500
PAGE_CHARACTERS = 20_000
DEFAULT_RETRY = RetryPolicy()  # the OpenAI gateway's defaults: 4 attempts, 0.5 s doubling to 20 s
_STATUS_IN_MESSAGE = re.compile(r"status code (\d{3})")


class ExaWebSearch:
    def __init__(
        self, api_key: str, base_url: str, timeout_seconds: float, ledger: EgressLedger,
        approved_providers: Sequence[str], *, retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep, jitter: Callable[[], float] = random.random,
    ) -> None:
        self._exa = Exa(api_key=api_key, base_url=base_url.rstrip("/"), timeout=timeout_seconds)
        self._ledger = ledger
        self._retry, self._sleep, self._jitter = retry, sleep, jitter
        self._approved_providers = tuple(approved_providers)
        self.endpoint = ProviderEndpoint(EXA_PROVIDER, base_url.rstrip("/"), EXA_OFFICIAL_HOST)

    def search(self, query: str, limit: int, context: EgressContext) -> list[WebResult]:
        if not query.strip():
            raise InvalidInput("the web search query is empty", field="query")
        body = {"query": query, "numResults": max(1, min(limit, 25)),
                "contents": {"text": {"maxCharacters": SNIPPET_CHARACTERS}}}
        data = self._call("/search", body, "search", context)
        return [
            WebResult(url=r.get("url", ""), title=r.get("title") or "", snippet=r.get("text") or "",
                      published=r.get("publishedDate"))
            for r in data.get("results", [])
        ]

    def fetch(self, url: str, context: EgressContext) -> WebPage:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput("expected an http:// or https:// URL", field="url")
        body = {"urls": [url], "text": {"maxCharacters": PAGE_CHARACTERS}}
        results = self._call("/contents", body, "contents", context).get("results", [])
        if not results:
            raise NotFound(f"the page could not be fetched: {url}")
        page = results[0]
        return WebPage(url=page.get("url") or url, title=page.get("title") or "", text=page.get("text") or "")

    def _call(self, path: str, body: Mapping[str, Any], model: str, context: EgressContext) -> dict[str, Any]:
        if not is_approved(self.endpoint, self._approved_providers):
            self._record(model, context, "provider_not_approved", 0, 0, 0)
            raise refusal(self.endpoint)
        request_bytes = len(json.dumps(body).encode())
        return call_with_retries(
            lambda: self._attempt(path, body, request_bytes),
            begin=lambda: self._record(model, context, OUTCOME_IN_FLIGHT, 0, 0, 0),
            ledger=self._ledger, policy=self._retry, sleep=self._sleep, jitter=self._jitter)

    def _attempt(self, path: str, body: Mapping[str, Any], request_bytes: int) -> Attempt:
        try:
            data = self._exa.request(path, dict(body))
        except ExaTimeoutError as exc:
            return Attempt("timeout", request_bytes, 0, retryable=True,
                           error=_unavailable("Exa did not answer in time", exc))
        except requests.RequestException as exc:
            return Attempt("connection_error", request_bytes, 0, retryable=True,
                           error=_unavailable(f"Exa cannot be reached at {self.endpoint.base_url}", exc))
        except ValueError as exc:  # exa-py's error for a non-2xx answer or a non-JSON body
            outcome, error, retryable = _status_error(str(exc))
            return Attempt(outcome, request_bytes, 0, retryable=retryable, error=error)
        response_bytes = len(json.dumps(data, separators=(",", ":")).encode())
        if not isinstance(data, dict):
            return Attempt("invalid_response", request_bytes, response_bytes, error=DependencyUnavailable(
                f"the answer from {self.endpoint.base_url} is not an Exa API response: check ai.exa_base_url",
                retry_after_seconds=60))
        return Attempt("ok", request_bytes, response_bytes, result=data)

    def _record(self, model: str, context: EgressContext, outcome: str, request_bytes: int, response_bytes: int,
                duration_ms: int) -> int:
        return self._ledger.record(egress_entry(self.endpoint, model, context, request_bytes=request_bytes,
                                         response_bytes=response_bytes, duration_ms=duration_ms, outcome=outcome))


def _unavailable(message: str, cause: Exception) -> DependencyUnavailable:
    error = DependencyUnavailable(message, retry_after_seconds=30)
    error.__cause__ = cause
    return error


def _status_error(message: str) -> tuple[str, TowError, bool]:
    """The ledger outcome, the error and whether to retry, from exa-py's ``ValueError`` message."""
    match = _STATUS_IN_MESSAGE.search(message)
    if not match:  # a 2xx answer whose body is not JSON: not Exa, retrying will not change that
        return "invalid_response", DependencyUnavailable(
            "the answer from Exa is not an Exa API response: check ai.exa_base_url", retry_after_seconds=60), False
    status = int(match.group(1))
    if status == 429:
        return "http_429", Throttled("Exa is rate limiting TOW: try again in a minute", retry_after_seconds=60), True
    if status in (401, 403):
        return f"http_{status}", DependencyUnavailable(
            f"Exa refused the credentials ({status}): check EXA_API_KEY", retry_after_seconds=300), False
    if status >= 500 or status == 408:
        return f"http_{status}", DependencyUnavailable(f"Exa answered {status}: try again later",
                                                       retry_after_seconds=30), True
    return f"http_{status}", InvalidInput(f"Exa rejected the request ({status})"), False
