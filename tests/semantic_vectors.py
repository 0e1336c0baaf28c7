"""Deterministic, meaningful-enough embeddings for tests: a hashed bag of words, L2-normalised.

Texts that share words get a high cosine similarity, texts that share none are orthogonal or nearly so,
so semantic search can be tested against an exact oracle without a real model. Both the fake OpenAI
server and in-process fakes of the embedding port use this one function.
"""

from __future__ import annotations

import hashlib
import math
import re

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def bag_of_words_vector(text: str, dimension: int) -> list[float]:
    vector = [0.0] * dimension
    for word in words(text):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "big") % dimension
        sign = 1.0 if digest[4] & 1 else -1.0
        vector[index] += sign
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        # An empty text still needs a valid unit vector; a fixed axis keeps it deterministic.
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]
