"""The embedding worker waits out a database outage (issue 17): each poll logs one line naming it, never a
traceback, and the worker keeps polling until the database answers again."""

from __future__ import annotations

import logging
import threading

from tow_core.embeddings import EmbeddingSpace
from tow_core.errors import DatabaseUnavailable
from tow_http.embedding_worker import EmbeddingWorker


class DownThenUp:
    """Spaces and queue of a database that is unavailable for the first ``down`` calls."""

    def __init__(self, down: int) -> None:
        self.down, self.calls = down, 0
        self.answered = threading.Event()

    def record_first(self, model: str, dim: int) -> EmbeddingSpace:
        self.calls += 1
        if self.calls <= self.down:
            raise DatabaseUnavailable("the database is unavailable: try again in a moment", retry_after_seconds=2)
        self.answered.set()
        return EmbeddingSpace(1, model, dim)

    def claim(self, limit: int, lease_seconds: int, max_attempts: int) -> list:
        return []  # nothing queued


def test_an_outage_is_one_warning_line_per_poll_and_the_worker_carries_on(caplog):
    database = DownThenUp(down=3)
    model = type("Model", (), {"model_name": "text-embedding-3-small", "dimension": 8})()
    worker = EmbeddingWorker(queue=database, spaces=database, model=model, poll_seconds=0.01)
    with caplog.at_level(logging.WARNING, logger="tow.embeddings"):
        thread = threading.Thread(target=worker.run_forever, daemon=True)
        thread.start()
        assert database.answered.wait(5)
        worker.stop()  # sets the stop event; this test's thread is not the worker's own
        thread.join(5)
    outage = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage) == 3 and all(r.exc_info is None for r in outage)
    assert worker.error is None
