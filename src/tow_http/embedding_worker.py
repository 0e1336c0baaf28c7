"""The embedding worker: a background thread that drains the embedding outbox (SPEC §6, §11).

``tow serve`` runs one inside the server process when an embedding model is configured; ``tow worker``
runs one on its own (any number of them, on any machine: the outbox is shared through PostgreSQL with
``SKIP LOCKED`` leases). Before the first batch the worker checks that the configured model and
dimension are the ones the stored vectors were made in (``tow_core.embeddings.require_space``).
"""

from __future__ import annotations

import logging
import threading

from tow_core.ai import EmbeddingModel
from tow_core.embeddings import (
    LEASE_SECONDS,
    EmbeddingQueue,
    EmbeddingSpaceMismatch,
    EmbeddingSpaces,
    embed_pending,
    require_space,
)
from tow_core.errors import DatabaseUnavailable

log = logging.getLogger("tow.embeddings")

POLL_SECONDS = 2.0  # idle wait between polls of an empty outbox
BATCH_SIZE = 64


class EmbeddingWorker:
    def __init__(self, queue: EmbeddingQueue, spaces: EmbeddingSpaces, model: EmbeddingModel, *,
                 poll_seconds: float = POLL_SECONDS, batch_size: int = BATCH_SIZE,
                 lease_seconds: int = LEASE_SECONDS) -> None:
        self._queue, self._spaces, self._model = queue, spaces, model
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._lease_seconds = lease_seconds  # a batch whose worker died is claimed again after it
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.embedded = 0  # records claimed and processed since start
        self.error: Exception | None = None  # why the worker stopped on its own, if it did

    def check_space(self) -> None:
        """Raise ``EmbeddingSpaceMismatch`` now (at startup) rather than in the background."""
        require_space(self._spaces, self._model)

    def run_once(self) -> int:
        """Drain what is due now; returns how many records were processed."""
        total = 0
        while not self._stopping.is_set() and (done := self._batch()):
            total += done
        return total

    def _batch(self) -> int:
        done = embed_pending(self._queue, self._spaces, self._model, batch_size=self._batch_size,
                             lease_seconds=self._lease_seconds)
        self.embedded += done
        return done

    def run_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._batch():
                    continue
            except EmbeddingSpaceMismatch as exc:  # a migration switched spaces under us: restart with new config
                log.error("embedding worker stopped: %s", exc.message)
                self.error = exc
                return
            except DatabaseUnavailable as exc:  # one line per poll, not a traceback: it is expected to return
                log.warning("embedding worker: %s; polling again", exc.message)
            except Exception:  # keep serving; the lease returns the batch to the queue
                log.exception("embedding batch failed; retrying after its lease")
            self._stopping.wait(self._poll_seconds)

    def start(self) -> None:
        self.check_space()
        self._thread = threading.Thread(target=self.run_forever, name="tow-embedding-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand (its lease would return it anyway) and stop."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
