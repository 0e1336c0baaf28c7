"""A local Exa-compatible HTTP server for tests: ``POST /search`` and ``POST /contents``.

Records every request; scripted with ``add_page(url, title, text)`` (the corpus that search returns,
ranked by shared words with the query, and that contents fetches) and ``queue_failure(status, times=n)``
(scripted 429/5xx answers, consumed in order, for the retry tests).
A request without the ``x-api-key`` header is a violation that fails the test at fixture teardown.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.local_http_server import LocalHttpServer
from tests.semantic_vectors import words


@dataclass
class ExaRequest:
    path: str
    headers: dict[str, str]
    body: Any
    body_bytes: int


class FakeExaServer(LocalHttpServer):
    def __init__(self) -> None:
        self.requests: list[ExaRequest] = []
        self.violations: list[str] = []
        self.pages: dict[str, tuple[str, str]] = {}
        self._failures: deque[int] = deque()
        self._lock = threading.Lock()
        super().__init__(self._handler_class())

    @property
    def base_url(self) -> str:
        return self.origin

    def add_page(self, url: str, title: str, text: str) -> None:
        self.pages[url] = (title, text)

    def queue_failure(self, status: int, *, times: int = 1) -> None:
        """The next ``times`` requests are answered ``status`` (429, 500, 502, ...) with an error body."""
        self._failures.extend([status] * times)

    def _answer(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if not {k.lower() for k in headers} >= {"x-api-key"}:
            self.violations.append(f"Exa request without x-api-key: {path}")
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            return failure, {"error": f"scripted {failure}"}
        if path == "/search":
            return 200, self._search(body)
        if path == "/contents":
            return 200, self._contents(body)
        self.violations.append(f"request to an Exa API TOW does not use: {path}")
        return 404, {"error": "unknown path"}

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        query = set(words(body["query"]))
        limit = (body.get("numResults") or 10)
        max_chars = ((body.get("contents") or {}).get("text") or {}).get("maxCharacters", 10_000)
        ranked = sorted(self.pages.items(), key=lambda kv: -len(query & set(words(kv[1][0] + " " + kv[1][1]))))
        hits = [(url, page) for url, page in ranked if query & set(words(page[0] + " " + page[1]))][:limit]
        return {"requestId": "req-1", "resolvedSearchType": "neural", "results": [
            {"id": url, "url": url, "title": title, "publishedDate": "2026-01-02T00:00:00.000Z",
             "text": text[:max_chars]} for url, (title, text) in hits]}

    def _contents(self, body: dict[str, Any]) -> dict[str, Any]:
        max_chars = (body.get("text") or {}).get("maxCharacters", 10_000)
        found = [u for u in body["urls"] if u in self.pages]
        return {"requestId": "req-2",
                "results": [{"id": u, "url": u, "title": self.pages[u][0], "text": self.pages[u][1][:max_chars]}
                            for u in found],
                "statuses": [{"id": u, "status": "success" if u in self.pages else "error"} for u in body["urls"]]}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: avoid delayed-ACK stalls

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                body = json.loads(raw) if raw else None
                path = self.path.split("?")[0]
                with fake._lock:
                    fake.requests.append(ExaRequest(path, dict(self.headers), body, len(raw)))
                status, answer = fake._answer(path, dict(self.headers), body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

        return Handler
