"""PasswordHasher port over argon2-cffi, using argon2id (OWASP Password Storage Cheat Sheet).

argon2-cffi's defaults are RFC 9106's "low memory" profile (t=3, m=64 MiB, p=4), above OWASP's
minimum for argon2id; tests pass cheap parameters instead.
"""

from __future__ import annotations

import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_DEFAULTS = argon2.PasswordHasher()


class Argon2PasswordHasher:
    """Argon2id hashing; vendor exceptions never leave this class."""

    def __init__(
        self,
        *,
        time_cost: int = _DEFAULTS.time_cost,
        memory_cost: int = _DEFAULTS.memory_cost,
        parallelism: int = _DEFAULTS.parallelism,
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=argon2.Type.ID
        )
        # Hash of a random password nobody knows, with the same parameters as real hashes, so that
        # dummy_verify costs what verify costs.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        # UnicodeError: a non-ASCII hash or a password with lone surrogates cannot be encoded.
        except (VerifyMismatchError, VerificationError, InvalidHashError, UnicodeError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, UnicodeError):
            return True  # a hash we cannot parse is not one to keep

    def dummy_verify(self, password: str) -> bool:
        """Equalise login timing for unknown emails (OWASP Authentication Cheat Sheet); always False."""
        self.verify(self._dummy_hash, password)
        return False
