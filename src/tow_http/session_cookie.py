"""HMAC-SHA256 signing of the session cookie and of small values (SPEC §3).

The cookie carries a random token (OWASP Session Management Cheat Sheet: at least 64 bits of entropy;
we use 256) plus a MAC, so a forged or altered cookie is refused before any database lookup. The server
stores only ``token_hash(token)``, so a database leak does not yield usable cookies.

Format: ``<payload>.<urlsafe-base64(HMAC-SHA256), no padding>``. Each use gets its own MAC key derived
from APP_SECRET (HMAC as a KDF, labels in the style of NIST SP 800-108), so a value signed for one
purpose (OIDC state, CSRF) never verifies as another or as a session cookie. ``previous_secret``
supports a planned APP_SECRET rotation: old signatures still verify and are flagged for re-issue.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

MAX_COOKIE_LENGTH = 512
MAX_SIGNED_VALUE_LENGTH = 4096  # browsers cap a whole cookie at 4096 bytes (RFC 6265 §6.1)
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_SIGNATURE_LENGTH = 43  # len(urlsafe_b64(32-byte SHA-256 MAC)) without padding
_COOKIE_LABEL = b"tow session cookie v1"
_COOKIE_PREFIX = b"tow-session-v1:"
_VALUE_LABEL = b"tow signed value v1:"
_VALUE_PREFIX = b"tow-value-v1:"


@dataclass(frozen=True, slots=True)
class VerifiedCookie:
    token: str
    signed_with_previous: bool  # True: re-issue the cookie under the current secret


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _derive(secret: str, label: bytes) -> bytes:
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


def _mac(key: bytes, message: bytes) -> str:
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


class SessionCookieSigner:
    """Signs and verifies session cookies and purpose-bound values with APP_SECRET (and its predecessor)."""

    def __init__(self, secret: str, previous_secret: str | None = None) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        self._secrets = [secret] if not previous_secret else [secret, previous_secret]

    @staticmethod
    def new_token() -> str:
        return _b64(secrets.token_bytes(32))

    @staticmethod
    def token_hash(token: str) -> str:
        """What the server stores; the token itself is only ever in the browser's cookie."""
        return hashlib.sha256(token.encode()).hexdigest()

    def sign(self, token: str) -> str:
        if not _TOKEN.fullmatch(token):
            raise ValueError("a session token is URL-safe base64 text")
        return f"{token}.{_mac(_derive(self._secrets[0], _COOKIE_LABEL), _COOKIE_PREFIX + token.encode())}"

    def verify(self, cookie_value: str) -> VerifiedCookie | None:
        if len(cookie_value) > MAX_COOKIE_LENGTH or not cookie_value.isascii():
            return None
        token, _, signature = cookie_value.partition(".")
        if not _TOKEN.fullmatch(token) or not _is_signature(signature):
            return None
        index = self._matching_secret(_COOKIE_LABEL, _COOKIE_PREFIX + token.encode(), signature)
        return None if index is None else VerifiedCookie(token, signed_with_previous=index > 0)

    def sign_value(self, purpose: str, value: str) -> str:
        """Sign an ASCII ``value`` for one ``purpose`` (e.g. "csrf", "oidc-state")."""
        if not value.isascii():
            raise ValueError("signed values must be ASCII; encode them first")
        return f"{value}.{_mac(_derive(self._secrets[0], _value_label(purpose)), _value_message(purpose, value))}"

    def verify_value(self, purpose: str, signed: str) -> str | None:
        """The value, if ``signed`` came from ``sign_value`` with this purpose and a known secret."""
        if len(signed) > MAX_SIGNED_VALUE_LENGTH or not signed.isascii():
            return None
        value, dot, signature = signed.rpartition(".")  # the signature never contains a dot
        if not dot or not _is_signature(signature):
            return None
        index = self._matching_secret(_value_label(purpose), _value_message(purpose, value), signature)
        return None if index is None else value

    def _matching_secret(self, label: bytes, message: bytes, signature: str) -> int | None:
        # Comparing the encoded text, not decoded bytes, also refuses non-canonical base64 (the last
        # character's unused bits), so no two distinct cookies carry the same valid MAC.
        for index, secret in enumerate(self._secrets):
            if hmac.compare_digest(_mac(_derive(secret, label), message).encode(), signature.encode()):
                return index
        return None


def _is_signature(text: str) -> bool:
    return len(text) == _SIGNATURE_LENGTH and _TOKEN.fullmatch(text) is not None


def _value_label(purpose: str) -> bytes:
    return _VALUE_LABEL + purpose.encode()


def _value_message(purpose: str, value: str) -> bytes:
    return _VALUE_PREFIX + purpose.encode() + b":" + value.encode()
