"""The one module that talks to OpenAI (SPEC §6): client construction, the only two API calls TOW
makes (Responses and Embeddings), retries, error wrapping, the approved-provider rule and the
data-egress ledger.

Structural guarantees, pinned by ``tests/unit/test_openai_boundary.py``:
- no other module under ``src/`` imports ``openai`` or touches the client;
- ``create_response`` is the only caller of ``responses.create`` and always sends ``store=False``
  (the keyword is fixed here and cannot be passed in), so OpenAI keeps no conversation state; parameters
  that would keep state anyway (``previous_response_id``, ``conversation``, or ``store`` smuggled in
  through the SDK's ``extra_body`` / ``extra_query`` / ``extra_headers``, which it merges into the request
  unchecked) are refused with ``ProviderStateRefused`` before anything is sent or ledgered;
- nothing in ``src/`` names the Conversations, Assistants, Threads or Vector Stores APIs.

Retries are ours, not the SDK's (``max_retries=0``): every HTTP attempt must leave exactly one ledger
row — written ``in_flight`` before the attempt, completed after it — which the SDK's hidden retries
would not. 429, 5xx, timeouts and connection errors are retried by ``tow_adapters.http_retry`` (the
policy the Exa adapter shares) with exponential backoff and jitter, honouring ``Retry-After`` /
``retry-after-ms`` when the server sends them.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import openai

from tow_adapters.http_retry import Attempt, RetryPolicy, call_with_retries, retry_after_seconds
from tow_core.ai import EgressContext, TextSink
from tow_core.egress import (
    OUTCOME_IN_FLIGHT,
    EgressLedger,
    ProviderEndpoint,
    egress_entry,
    is_approved,
    refusal,
)
from tow_core.errors import (
    AiNotConfigured,
    DependencyUnavailable,
    InvalidInput,
    ProviderStateRefused,
    Throttled,
    TowError,
)

OPENAI_PROVIDER = "openai"
OPENAI_OFFICIAL_HOST = "api.openai.com"
# Responses API parameters that make OpenAI keep or reuse server-side state (the only place src/ may name
# them: tests/unit/test_openai_boundary.py).
STATE_KEEPING_PARAMETERS = frozenset({"previous_response_id", "conversation"})
# The SDK's escape hatches: their contents are merged into the request as they are, past every typed
# parameter, so an ``extra_body={"store": True}`` would override the fixed ``store=False``.
EXTRA_PARAMETERS = ("extra_body", "extra_query", "extra_headers")


@dataclass(frozen=True, slots=True)
class OpenAIOptions:
    api_key: str
    base_url: str
    timeout_seconds: float
    max_attempts: int = 4
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 20.0
    # A server asking us to wait longer than this is answered with Throttled instead of a blocked request.
    max_retry_after_seconds: float = 60.0


def build_openai_client(options: OpenAIOptions) -> openai.OpenAI:
    """The one ``openai.OpenAI`` TOW builds. SDK retries are off: ``OpenAIGateway`` retries itself."""
    return openai.OpenAI(
        api_key=options.api_key, base_url=options.base_url, timeout=options.timeout_seconds, max_retries=0
    )


class OpenAIGateway:
    """Every OpenAI call goes through here; each HTTP attempt leaves one egress-ledger row."""

    def __init__(
        self, options: OpenAIOptions, ledger: EgressLedger, approved_providers: Sequence[str], *,
        sleep: Callable[[float], None] = time.sleep, jitter: Callable[[], float] = random.random,
    ) -> None:
        self._options = options
        self._client = build_openai_client(options)
        self._ledger = ledger
        self._approved_providers = tuple(approved_providers)
        self._sleep = sleep
        self._jitter = jitter
        self._policy = RetryPolicy(options.max_attempts, options.backoff_base_seconds, options.backoff_cap_seconds,
                                   options.max_retry_after_seconds)
        self.endpoint = ProviderEndpoint(OPENAI_PROVIDER, options.base_url.rstrip("/"), OPENAI_OFFICIAL_HOST)

    def create_response(self, *, model: str, params: Mapping[str, Any], context: EgressContext,
                        sink: TextSink | None = None) -> Any:
        """One Responses API call. ``store=False`` is set here, after ``params``, so no caller can
        override it; anything in ``params`` that would keep state at OpenAI is refused first.

        With a ``sink`` the call is streamed (``stream=True``): each ``response.output_text.delta`` goes to
        the sink as it arrives, and the answer is the response of the final ``response.completed`` event —
        the same ``Response`` an unstreamed call returns. Each HTTP attempt is still one ledger row; a stream
        that breaks mid-way (or ends without its final event) is a failed, retryable attempt, and the sink
        is told to ``discard`` what that attempt streamed before anything else happens."""
        refuse_provider_state(params)
        params = {name: value for name, value in params.items() if name not in ("store", "stream")}
        streamed = {"stream": True} if sink is not None else {}
        return self._call(model, context, lambda: self._client.responses.with_raw_response.create(
            model=model, **params, **streamed, store=False), sink=sink)

    def create_embeddings(self, *, model: str, texts: Sequence[str], dimensions: int, context: EgressContext) -> Any:
        return self._call(
            model, context,
            lambda: self._client.embeddings.with_raw_response.create(
                model=model, input=list(texts), dimensions=dimensions, encoding_format="float"
            ),
        )

    # --- the one call path --------------------------------------------------------------------------

    def _call(self, model: str, context: EgressContext, send: Callable[[], Any], *,
              sink: TextSink | None = None) -> Any:
        if not is_approved(self.endpoint, self._approved_providers):
            self._record(model, context, Attempt("provider_not_approved", 0, 0), duration_ms=0)
            raise refusal(self.endpoint)
        attempt_once = (lambda: self._attempt(send)) if sink is None else (lambda: self._streamed_attempt(send, sink))
        return call_with_retries(
            attempt_once, begin=lambda: self._record(model, context, Attempt(OUTCOME_IN_FLIGHT, 0, 0),
                                                                      duration_ms=0),
            ledger=self._ledger, policy=self._policy, sleep=self._sleep, jitter=self._jitter)

    def _attempt(self, send: Callable[[], Any]) -> Attempt:
        try:
            raw = send()
            result = raw.parse()
        except (openai.OpenAIError, ValueError) as exc:
            return self._failed(exc)
        sizes = len(raw.http_request.content or b""), len(raw.content)
        if isinstance(result, str | bytes):  # the SDK hands back non-JSON bodies (e.g. a proxy's page)
            return Attempt("invalid_response", *sizes, error=self._unreadable())
        return Attempt("ok", *sizes, result=result)

    def _failed(self, exc: Exception) -> Attempt:
        """The attempt a request that raised before any answer was read amounts to (streamed or not)."""
        if isinstance(exc, openai.APIStatusError):
            return self._status_attempt(exc)
        if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError: it is one
            return Attempt("timeout", _request_bytes(exc), 0, retryable=True, error=DependencyUnavailable(
                f"OpenAI did not answer within {self._options.timeout_seconds:g} s "
                f"({self.endpoint.base_url})", retry_after_seconds=30))
        if isinstance(exc, openai.APIConnectionError):
            return Attempt("connection_error", _request_bytes(exc), 0, retryable=True, error=DependencyUnavailable(
                f"OpenAI cannot be reached at {self.endpoint.base_url}", retry_after_seconds=30))
        return Attempt("invalid_response", 0, 0, error=self._unreadable())  # not the protocol's shape

    def _streamed_attempt(self, send: Callable[[], Any], sink: TextSink) -> Attempt:
        """One streamed attempt: the HTTP errors of an unstreamed one, then the events as they come."""
        streamed = False
        try:
            raw = send()
            events = iter(raw.parse())
        except (openai.OpenAIError, ValueError) as exc:
            return self._failed(exc)
        final = None
        outcome: str | None = None
        while outcome is None:
            try:
                event = next(events)
            except StopIteration:
                outcome = "ok" if final is not None else "stream_incomplete"
                break
            except ValueError:  # an event that is not JSON
                outcome = "invalid_response"
                break
            except Exception:  # noqa: BLE001 - the transport broke mid-stream (httpx's errors, not ours to import)
                outcome = "stream_broken"
                break
            kind = getattr(event, "type", None)
            if kind == "response.output_text.delta" and getattr(event, "delta", None):
                streamed = True
                sink.delta(event.delta)
            elif kind in ("response.completed", "response.failed", "response.incomplete"):
                final = event.response
            elif kind == "error":
                outcome = "stream_error"
        raw.http_response.close()  # after an error event or a break: nothing more is read from it
        sizes = len(raw.http_request.content or b""), raw.http_response.num_bytes_downloaded
        if outcome == "ok":
            return Attempt("ok", *sizes, result=final)
        if streamed:
            sink.discard()  # this attempt's text is void: a retry starts over, a failure ends the call
        if outcome == "invalid_response":
            return Attempt(outcome, *sizes, error=self._unreadable())
        return Attempt(outcome, *sizes, retryable=True, error=DependencyUnavailable(
            f"OpenAI's answer stream from {self.endpoint.base_url} broke off before its end: try again later",
            retry_after_seconds=30))

    def _unreadable(self) -> DependencyUnavailable:
        return DependencyUnavailable(
            f"the answer from {self.endpoint.base_url} is not an OpenAI API response: check ai.openai_base_url",
            retry_after_seconds=60,
        )

    def _status_attempt(self, exc: openai.APIStatusError) -> Attempt:
        status = exc.status_code
        request_bytes = len(exc.response.request.content or b"")
        response_bytes = len(exc.response.content or b"")
        retry_after = retry_after_seconds(exc.response.headers)
        outcome = f"http_{status}"
        if status == 429 and _error_code(exc.body) != "insufficient_quota":
            wait = math.ceil(retry_after) if retry_after is not None else 30
            return Attempt(outcome, request_bytes, response_bytes, True, retry_after, Throttled(
                f"OpenAI is rate limiting TOW: try again in {wait} s", retry_after_seconds=max(1, wait)))
        if status >= 500 or status == 408:
            return Attempt(outcome, request_bytes, response_bytes, True, retry_after, DependencyUnavailable(
                f"OpenAI answered {status}: try again later", retry_after_seconds=30))
        return Attempt(outcome, request_bytes, response_bytes, error=_permanent_error(status, exc))

    def _record(self, model: str, context: EgressContext, attempt: Attempt, *, duration_ms: int) -> int:
        return self._ledger.record(egress_entry(
            self.endpoint, model, context, request_bytes=attempt.request_bytes,
            response_bytes=attempt.response_bytes, duration_ms=duration_ms, outcome=attempt.outcome,
        ))


def refuse_provider_state(params: Mapping[str, Any]) -> None:
    """``ProviderStateRefused`` if ``params`` would make OpenAI store the request or chain it to stored
    state: ``store`` other than ``False``, a state-keeping parameter, or an ``extra_*`` parameter whose
    keys (at any depth, any spelling: ``Store``, ``previous-response-id``) name store or either of those."""
    if "store" in params and params["store"] is not False:
        raise ProviderStateRefused(f"store must be false (it is {params['store']!r}): OpenAI keeps nothing TOW "
                                   "sends", field="store")
    if stateful := sorted(STATE_KEEPING_PARAMETERS & params.keys()):
        raise ProviderStateRefused(f"{stateful[0]} is refused: each request carries its whole conversation, "
                                   "none is kept at OpenAI", field=stateful[0])
    for name in EXTRA_PARAMETERS:
        if name in params and (touched := _state_keys(params[name])):
            raise ProviderStateRefused(f"{name} names {', '.join(sorted(touched))}: the SDK would send it past "
                                       "store=false, so it is refused", field=name)


def _state_keys(value: object) -> set[str]:
    """The keys anywhere in ``value`` that touch provider state; a value that cannot be inspected (not a
    mapping, list or scalar) counts as touching it."""
    if isinstance(value, Mapping):
        found = set()
        for key, inner in value.items():
            normalised = str(key).lower().replace("-", "_")
            if "store" in normalised or any(state in normalised for state in STATE_KEEPING_PARAMETERS):
                found.add(str(key))
            found |= _state_keys(inner)
        return found
    if isinstance(value, list | tuple):
        return set().union(*map(_state_keys, value)) if value else set()
    if value is None or isinstance(value, str | int | float | bool):
        return set()
    return {f"a {type(value).__name__} that cannot be checked"}


def _permanent_error(status: int, exc: openai.APIStatusError) -> TowError:
    reason = _error_message(exc.body) or exc.message
    if status in (401, 403):
        return AiNotConfigured(f"OpenAI refused the credentials ({status}): check OPENAI_API_KEY ({reason})")
    if status == 429:
        return DependencyUnavailable(f"OpenAI refused: the account's quota is exhausted ({reason})",
                                     retry_after_seconds=3600)
    if status == 404:
        return AiNotConfigured(f"OpenAI answered 404: check the ai.openai_* model names and base URL ({reason})")
    return InvalidInput(f"OpenAI rejected the request ({status}): {reason}")


def _request_bytes(exc: openai.APIConnectionError) -> int:
    try:
        return len(exc.request.content or b"")
    except Exception:  # noqa: BLE001 - a streamed or unread request body: nothing measurable was sent
        return 0


def _error_field(body: object, name: str) -> str | None:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get(name), str):
            return error[name]
    return None


def _error_code(body: object) -> str | None:
    return _error_field(body, "code")


def _error_message(body: object) -> str | None:
    return _error_field(body, "message")
