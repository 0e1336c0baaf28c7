"""Password hashing port and the password policy (SPEC §3: builtin auth, argon2id).

The policy follows NIST SP 800-63B §5.1.1.2 ("Memorized Secret Verifiers"): require a minimum length
and allow long passphrases, but impose no composition rules (no "one digit, one symbol"), which the
guideline found push people towards predictable passwords.
"""

from __future__ import annotations

from typing import Protocol

from tow_core.errors import InvalidInput

MIN_PASSWORD_LENGTH = 10
# NIST asks verifiers to accept at least 64 characters; the upper bound only stops a login request
# from making the server hash megabytes (a cheap denial of service).
MAX_PASSWORD_LENGTH = 1024


class PasswordHasher(Protocol):
    """Turns passwords into stored hashes and checks them; never raises for bad input on verify."""

    def hash(self, password: str) -> str:
        """Return an encoded hash with a fresh random salt."""
        ...

    def verify(self, password_hash: str, password: str) -> bool:
        """True only when ``password`` matches; False on mismatch or a malformed hash."""
        ...

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters; rehash after the next good login."""
        ...

    def dummy_verify(self, password: str) -> bool:
        """Spend the time of one ``verify`` and return False.

        Login calls this when the email is unknown, so an unknown account costs as long as a known one
        and response timing does not reveal which emails exist (OWASP Authentication Cheat Sheet,
        "Authentication and Error Messages").
        """
        ...


def check_password_policy(password: str) -> None:
    """Raise InvalidInput(field="password") unless the password is acceptable (NIST SP 800-63B).

    Length is what counts: at least 10 and at most 1024 characters, and not only whitespace.
    Composition (character classes) is deliberately not checked, per NIST SP 800-63B §5.1.1.2.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters", field="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD_LENGTH} characters", field="password")
    if not password.strip():
        raise InvalidInput("password must not be only whitespace", field="password")
