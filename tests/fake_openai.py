"""A local OpenAI-compatible HTTP server for tests: the real SDK adapters talk to it over TCP.

Speaks the two APIs TOW uses — ``POST /v1/responses`` and ``POST /v1/embeddings`` — and records every
request. It enforces the data controls of SPEC §6 as *violations* that fail the test at fixture
teardown: a Responses request without ``"store": false`` or with a ``previous_response_id``, or any request to an assistants, threads,
vector_stores or conversations path.

Scripting, per test:
- ``queue_response(text=..., function_calls=[...], reasoning=...)`` — the next Responses answers, in
  order (the default answer is the text "ok"); ``reasoning`` is the encrypted content of a reasoning item
  put first in the output (its ``encrypted_content`` only when the request asked for it with ``include``);
- ``queue_failure(status, headers=..., body=...)`` — the next request (either API) fails like this,
  e.g. ``queue_failure(429, headers={"Retry-After": "2"})``;
- ``queue_raw(status, text)`` — the next request gets a non-JSON (HTML) answer;
- ``queue_delay(seconds)`` — the next request answers only after a pause (for timeouts);
- ``queue_hold()`` — the next request waits until the test releases it (to look at the world mid-call);
- ``queue_stream_hold(after_deltas=n)`` — the next streamed answer that has text (a round of tool calls only
  passes by) sends its first ``n`` text deltas, then waits until the test releases it;
  ``queue_stream_cut(after_deltas=n)`` — it sends ``n`` deltas, then the connection is cut (a stream that
  breaks mid-way). These wait in their own queue, beside the other interruptions.

A request with ``"stream": true`` is answered with the Responses API's server-sent events, as OpenAI sends
them: ``response.created``, ``response.in_progress``, then per output item ``response.output_item.added``,
for a message ``response.content_part.added``, one ``response.output_text.delta`` per word,
``response.output_text.done``, ``response.content_part.done``, for a function call
``response.function_call_arguments.delta`` / ``.done``, then ``response.output_item.done``; finally
``response.completed`` carrying the whole response (the one an unstreamed request gets). Every event has its
``sequence_number``; the body is chunked (``transfer-encoding: chunked``), each event flushed on its own.
Embeddings are ``bag_of_words_vector(text, dimensions)`` from ``tests.semantic_vectors``.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.local_http_server import LocalHttpServer
from tests.semantic_vectors import bag_of_words_vector, words

FORBIDDEN_PATH_PARTS = ("assistants", "threads", "vector_stores", "conversations")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    body_bytes: int
    response_bytes: int = 0


@dataclass
class _Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass
class _Raw:
    """A non-JSON answer, as a misconfigured proxy in front of the provider would give."""

    status: int
    text: str


@dataclass
class _Delay:
    seconds: float


@dataclass
class Hold:
    """Keeps the next request open until the test calls ``release.set()``; ``arrived`` tells when it came."""

    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class StreamHold:
    """Keeps a streamed answer open after ``after_deltas`` text deltas until the test calls ``release.set()``."""

    after_deltas: int
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class _StreamCut:
    after_deltas: int


@dataclass
class _Stream:
    """A streamed answer: its events, and what interrupts it (a hold or a cut after some deltas)."""

    events: list[tuple[str, dict[str, Any]]]
    interruption: StreamHold | _StreamCut | None = None


def stream_events(response: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The Responses API's events for ``response``, as OpenAI streams them, each with its sequence_number."""
    events: list[tuple[str, dict[str, Any]]] = []

    def emit(kind: str, **data: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": len(events), **data}))

    started = copy.deepcopy(response) | {"status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=started)
    emit("response.in_progress", response=started)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            emit("response.output_item.added", output_index=index,
                 item=item | {"status": "in_progress", "content": []})
            text = item["content"][0]["text"]
            emit("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                 part={"type": "output_text", "text": "", "annotations": []})
            for piece in re.findall(r"\s*\S+\s*", text) or [text]:
                emit("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0,
                     delta=piece, logprobs=[])
            emit("response.output_text.done", item_id=item["id"], output_index=index, content_index=0, text=text,
                 logprobs=[])
            emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                 part=item["content"][0])
        elif item["type"] == "function_call":
            emit("response.output_item.added", output_index=index,
                 item=item | {"status": "in_progress", "arguments": ""})
            emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                 delta=item["arguments"])
            emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                 arguments=item["arguments"])
        else:
            emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response)
    return events


class FakeOpenAIServer(LocalHttpServer):
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self._responses: deque[dict[str, Any]] = deque()
        self._interruptions: deque[_Failure | _Delay | Hold | _Raw] = deque()
        self._mid_stream: deque[StreamHold | _StreamCut] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__(self._handler_class())

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    # --- scripting ------------------------------------------------------------------------------

    def queue_response(self, text: str = "", function_calls: list[tuple[str, dict[str, Any]]] = (),
                       input_tokens: int = 11, output_tokens: int = 7, reasoning: str | None = None) -> None:
        """``function_calls``: (name, arguments) pairs; each gets a fresh ``call_id``."""
        self._responses.append({"text": text, "calls": list(function_calls), "usage": (input_tokens, output_tokens),
                                "reasoning": reasoning})

    def queue_failure(self, status: int, headers: dict[str, str] | None = None, body: dict | None = None) -> None:
        self._interruptions.append(_Failure(status, headers or {}, body))

    def queue_raw(self, status: int, text: str) -> None:
        self._interruptions.append(_Raw(status, text))

    def queue_delay(self, seconds: float) -> None:
        self._interruptions.append(_Delay(seconds))

    def queue_hold(self) -> Hold:
        hold = Hold()
        self._interruptions.append(hold)
        return hold

    def queue_stream_hold(self, after_deltas: int = 1) -> StreamHold:
        hold = StreamHold(after_deltas)
        self._mid_stream.append(hold)
        return hold

    def queue_stream_cut(self, after_deltas: int = 1) -> None:
        self._mid_stream.append(_StreamCut(after_deltas))

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # --- protocol -------------------------------------------------------------------------------

    def _answer(self, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if any(part in path.split("/") for part in FORBIDDEN_PATH_PARTS):
            self.violations.append(f"request to a forbidden API: {path}")
            return 404, {}, {"error": {"message": "forbidden API in TOW tests", "code": "forbidden_api"}}
        if path == "/v1/responses" and (not isinstance(body, dict) or body.get("store") is not False):
            self.violations.append(f"Responses request without store=false: {str(body)[:200]}")
            return 400, {}, {"error": {"message": "store must be false in TOW", "code": "store_not_false"}}
        if path == "/v1/responses" and "previous_response_id" in body:
            self.violations.append(f"Responses request with previous_response_id: {str(body)[:200]}")
            return 400, {}, {"error": {"message": "nothing is stored to refer to", "code": "previous_response_id"}}
        with self._lock:
            interruption = self._interruptions.popleft() if self._interruptions else None
        if isinstance(interruption, _Delay):
            time.sleep(interruption.seconds)
        elif isinstance(interruption, Hold):
            interruption.arrived.set()
            interruption.release.wait(timeout=30)
        elif isinstance(interruption, _Raw):
            return interruption.status, {"content-type": "text/html"}, interruption
        elif isinstance(interruption, _Failure):
            error = interruption.body or {"error": {"message": f"scripted {interruption.status}", "type": "server_error",
                                                    "code": None}}
            return interruption.status, interruption.headers, error
        if path == "/v1/responses" and body.get("stream") is True:
            response = self._response(body)
            mid_stream = None
            with self._lock:
                if self._mid_stream and any(item["type"] == "message" for item in response["output"]):
                    mid_stream = self._mid_stream.popleft()
            return 200, {"content-type": "text/event-stream"}, _Stream(stream_events(response), mid_stream)
        if path == "/v1/responses":
            return 200, {}, self._response(body)
        if path == "/v1/embeddings":
            return 200, {}, self._embeddings(body)
        self.violations.append(f"request to an API TOW does not use: {path}")
        return 404, {}, {"error": {"message": f"unknown path {path}", "code": "unknown_url"}}

    def _response(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            script = self._responses.popleft() if self._responses else {"text": "ok", "calls": [], "usage": (11, 7)}
        output: list[dict[str, Any]] = []
        if script.get("reasoning"):
            asked = "reasoning.encrypted_content" in (body.get("include") or ())
            output.append({"type": "reasoning", "id": f"rs_{next(self._ids)}", "summary": [],
                           "encrypted_content": script["reasoning"] if asked else None})
        if script["text"]:
            output.append({"type": "message", "id": f"msg_{next(self._ids)}", "status": "completed",
                           "role": "assistant",
                           "content": [{"type": "output_text", "text": script["text"], "annotations": []}]})
        for name, arguments in script["calls"]:
            number = next(self._ids)
            output.append({"type": "function_call", "id": f"fc_{number}", "call_id": f"call_{number}",
                           "name": name, "arguments": json.dumps(arguments), "status": "completed"})
        input_tokens, output_tokens = script["usage"]
        return {
            "id": f"resp_{next(self._ids)}", "object": "response", "created_at": int(time.time()),
            "status": "completed", "model": body.get("model"), "output": output, "store": False,
            "instructions": body.get("instructions"), "tools": body.get("tools", []), "tool_choice": "auto",
            "parallel_tool_calls": True, "error": None, "incomplete_details": None, "metadata": {},
            "temperature": 1.0, "top_p": 1.0, "text": {"format": {"type": "text"}},
            "reasoning": body.get("reasoning"),
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "total_tokens": input_tokens + output_tokens, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
        }

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimension = body.get("dimensions") or 1536
        data = []
        for index, text in enumerate(texts):
            vector = bag_of_words_vector(text, dimension)
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(words(t)) or 1 for t in texts)
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: avoid delayed-ACK stalls

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                path = self.path.split("?")[0]
                # Recorded on arrival, so a request the client abandons (a timeout) is counted too.
                recorded = RecordedRequest(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body,
                                           len(raw))
                with fake._lock:
                    fake.requests.append(recorded)
                status, headers, answer = fake._answer(path, body)
                if isinstance(answer, _Stream):
                    self._stream(answer, recorded)
                    return
                payload = answer.text.encode() if isinstance(answer, _Raw) else json.dumps(answer).encode()
                recorded.response_bytes = len(payload)
                try:
                    self.send_response(status)
                    for name, value in {"content-type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _stream(self, stream: _Stream, recorded: RecordedRequest) -> None:
                interruption, deltas = stream.interruption, 0
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for kind, data in stream.events:
                        if interruption is not None and deltas == interruption.after_deltas:
                            if isinstance(interruption, _StreamCut):
                                self.close_connection = True  # no closing chunk: the client sees a broken body
                                return
                            interruption.arrived.set()
                            interruption.release.wait(timeout=30)
                            interruption = None
                        chunk = f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                        recorded.response_bytes += len(chunk)
                        deltas += kind == "response.output_text.delta"
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up mid-stream

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

        return Handler
