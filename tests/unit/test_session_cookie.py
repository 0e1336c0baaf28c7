"""Attacks on the signed session cookie and signed values (SPEC §3; OWASP Session Management)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tow_http.session_cookie import SessionCookieSigner, VerifiedCookie

SECRET = "s" * 40
OTHER = "o" * 40
signer = SessionCookieSigner(SECRET)


@pytest.fixture
def token() -> str:
    return SessionCookieSigner.new_token()


def test_signed_cookie_verifies(token: str) -> None:
    assert signer.verify(signer.sign(token)) == VerifiedCookie(token, signed_with_previous=False)


def test_new_tokens_are_256_bit_and_distinct() -> None:
    tokens = {SessionCookieSigner.new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) == 43 and "=" not in t for t in tokens)


# Cookie layout: 43-char token, ".", 43-char signature (87 chars).
@pytest.mark.parametrize("position", [0, 1, 20, 42, 43, 44, 60, 85, 86], ids=lambda p: f"char{p}")
@pytest.mark.parametrize("bit", [0, 1, 5, 7])
def test_flipping_one_bit_is_rejected(token: str, position: int, bit: int) -> None:
    cookie = signer.sign(token)
    tampered = cookie[:position] + chr(ord(cookie[position]) ^ (1 << bit)) + cookie[position + 1 :]
    assert signer.verify(tampered) is None


@pytest.mark.parametrize("length", [0, 1, 42, 43, 44, 60, 85, 86])
def test_truncation_is_rejected(token: str, length: int) -> None:
    assert signer.verify(signer.sign(token)[:length]) is None


def test_signature_of_one_token_does_not_fit_another() -> None:
    cookie_a = signer.sign(SessionCookieSigner.new_token())
    token_b = SessionCookieSigner.new_token()
    assert signer.verify(f"{token_b}.{cookie_a.split('.')[1]}") is None


def test_cookie_signed_with_another_secret_is_rejected(token: str) -> None:
    assert signer.verify(SessionCookieSigner(OTHER).sign(token)) is None


def test_previous_secret_is_accepted_only_when_configured_and_flagged(token: str) -> None:
    old_cookie = SessionCookieSigner(OTHER).sign(token)
    rotating = SessionCookieSigner(SECRET, previous_secret=OTHER)
    assert rotating.verify(old_cookie) == VerifiedCookie(token, signed_with_previous=True)
    assert rotating.verify(rotating.sign(token)) == VerifiedCookie(token, signed_with_previous=False)
    assert SessionCookieSigner(SECRET).verify(old_cookie) is None


def test_reissued_cookie_survives_dropping_the_previous_secret(token: str) -> None:
    rotating = SessionCookieSigner(SECRET, previous_secret=OTHER)
    reissued = rotating.sign(token)
    assert SessionCookieSigner(SECRET).verify(reissued) == VerifiedCookie(token, signed_with_previous=False)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param(".", id="only-dot"),
        pytest.param("abc.", id="no-signature"),
        pytest.param(".abc", id="no-token"),
        pytest.param("é" * 87, id="unicode"),
        pytest.param("a" * 10_000, id="10k-chars"),
        pytest.param("a" * 43 + "." + "b" * 43, id="right-shape-wrong-mac"),
    ],
)
def test_garbage_is_rejected(value: str) -> None:
    assert signer.verify(value) is None


def test_extra_dots_are_rejected(token: str) -> None:
    cookie = signer.sign(token)
    for tampered in (cookie + ".", "." + cookie, cookie + "." + cookie.split(".")[1], cookie.replace(".", "..")):
        assert signer.verify(tampered) is None


def test_base64_padding_or_whitespace_is_rejected(token: str) -> None:
    cookie = signer.sign(token)
    for tampered in (cookie + "=", cookie + " ", " " + cookie, cookie + "\n", cookie.replace(".", ".=")):
        assert signer.verify(tampered) is None


def test_sign_refuses_a_token_that_could_not_verify() -> None:
    with pytest.raises(ValueError):
        signer.sign("has.a.dot")


def test_value_signed_for_one_purpose_does_not_verify_for_another() -> None:
    signed = signer.sign_value("csrf", "nonce-123")
    assert signer.verify_value("csrf", signed) == "nonce-123"
    assert signer.verify_value("oidc-state", signed) is None


def test_signed_value_is_not_a_session_cookie(token: str) -> None:
    assert signer.verify(signer.sign_value("csrf", token)) is None
    assert signer.verify_value("csrf", signer.sign(token)) is None


def test_signed_value_may_contain_dots_but_not_be_altered() -> None:
    signed = signer.sign_value("oidc-state", "a.b.c")
    assert signer.verify_value("oidc-state", signed) == "a.b.c"
    assert signer.verify_value("oidc-state", "x" + signed) is None
    assert signer.verify_value("oidc-state", signed[:-1]) is None


def test_signed_value_follows_the_previous_secret_rule() -> None:
    old = SessionCookieSigner(OTHER).sign_value("csrf", "v")
    assert SessionCookieSigner(SECRET, previous_secret=OTHER).verify_value("csrf", old) == "v"
    assert SessionCookieSigner(SECRET).verify_value("csrf", old) is None


def test_token_hash_is_hex_sha256_and_not_the_token(token: str) -> None:
    digest = SessionCookieSigner.token_hash(token)
    assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
    assert digest != token and token not in digest


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        SessionCookieSigner("")


@given(st.binary(max_size=2048))
def test_random_bytes_never_verify_and_never_raise(raw: bytes) -> None:
    for text in (raw.decode("latin-1"), raw.decode("utf-8", errors="surrogateescape")):
        assert signer.verify(text) is None
        assert signer.verify_value("csrf", text) is None


@given(st.text(max_size=600))
def test_random_text_never_verifies(text: str) -> None:
    assert signer.verify(text) is None
