"""An in-process fake of the ``EmbeddingModel`` port on ``tests/semantic_vectors.py`` (the fake OpenAI
server uses the same function, so results agree once both exist).

It keeps what a test needs to check the pipeline: every call's egress context, the texts embedded, the
largest number of calls in flight at once per record, and an optional failure to inject.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

from tests.semantic_vectors import bag_of_words_vector
from tow_core.ai import EgressContext
from tow_core.errors import DependencyUnavailable


class FakeEmbeddingModel:
    def __init__(self, dimension: int = 64, model_name: str = "fake-embedding", *, pause: float = 0.0) -> None:
        self._dimension = dimension
        self._model_name = model_name
        self._pause = pause  # widens the window in which two workers could overlap
        self._lock = threading.Lock()
        self.contexts: list[EgressContext] = []
        self.texts: list[str] = []
        self.in_flight: Counter[str] = Counter()
        self.overlaps: list[str] = []  # display IDs embedded by two calls at once
        self.fail_next: int = 0  # this many calls raise DependencyUnavailable
        self.calls_before_interrupt: int | None = None  # then raise KeyboardInterrupt (a killed process)

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str], context: EgressContext) -> list[list[float]]:
        with self._lock:
            if self.calls_before_interrupt is not None:
                if self.calls_before_interrupt == 0:
                    raise KeyboardInterrupt
                self.calls_before_interrupt -= 1
            if self.fail_next:
                self.fail_next -= 1
                raise DependencyUnavailable("fake provider down", retry_after_seconds=1)
            self.contexts.append(context)
            self.texts.extend(texts)
            for display_id in context.record_display_ids:
                self.in_flight[display_id] += 1
                if self.in_flight[display_id] > 1:
                    self.overlaps.append(display_id)
        try:
            if self._pause:
                threading.Event().wait(self._pause)
            return [bag_of_words_vector(text, self._dimension) for text in texts]
        finally:
            with self._lock:
                for display_id in context.record_display_ids:
                    self.in_flight[display_id] -= 1
