"""Password policy (NIST SP 800-63B) and the argon2id PasswordHasher adapter (SPEC §3)."""

from __future__ import annotations

import pytest
from argon2 import Type, extract_parameters

from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
from tow_core.errors import InvalidInput
from tow_core.passwords import PasswordHasher, check_password_policy

CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return Argon2PasswordHasher(**CHEAP)


def test_round_trip(hasher: PasswordHasher) -> None:
    assert hasher.verify(hasher.hash("correct horse battery"), "correct horse battery")


def test_wrong_password_is_false(hasher: PasswordHasher) -> None:
    assert hasher.verify(hasher.hash("correct horse battery"), "correct horse batterz") is False


@pytest.mark.parametrize(
    "bad_hash", ["", "not-a-hash", "$argon2id$garbage", "$argon2id$v=19$m=8,t=1,p=1$", "$argon2id$\u00e9"]
)
def test_malformed_hash_is_false_not_an_error(hasher: PasswordHasher, bad_hash: str) -> None:
    assert hasher.verify(bad_hash, "correct horse battery") is False


def test_unencodable_password_is_false(hasher: PasswordHasher) -> None:
    assert hasher.verify(hasher.hash("correct horse battery"), "lone \ud800 surrogate") is False


def test_hash_is_argon2id(hasher: PasswordHasher) -> None:
    assert hasher.hash("correct horse battery").startswith("$argon2id$")


def test_same_password_hashes_differently(hasher: PasswordHasher) -> None:
    assert hasher.hash("correct horse battery") != hasher.hash("correct horse battery")


def test_needs_rehash_only_when_parameters_change(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery")
    assert hasher.needs_rehash(stored) is False
    assert Argon2PasswordHasher(**{**CHEAP, "time_cost": 2}).needs_rehash(stored) is True


def test_needs_rehash_for_malformed_hash(hasher: PasswordHasher) -> None:
    assert hasher.needs_rehash("not-a-hash") is True


def test_default_parameters_meet_owasp_minimum() -> None:
    # OWASP Password Storage Cheat Sheet: argon2id with at least m=19 MiB, t=2, p=1.
    params = extract_parameters(Argon2PasswordHasher().hash("correct horse battery"))
    assert params.type is Type.ID
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2 and params.parallelism >= 1


def test_dummy_verify_is_false(hasher: PasswordHasher) -> None:
    assert hasher.dummy_verify("correct horse battery") is False
    assert hasher.dummy_verify("") is False


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("", id="empty"),
        pytest.param("123456789", id="nine-chars"),
        pytest.param("x" * 1025, id="over-1024"),
        pytest.param(" " * 12, id="only-spaces"),
        pytest.param("\t\n \u00a0\u2003" * 3, id="only-unicode-whitespace"),
    ],
)
def test_policy_rejects_naming_the_password_field(password: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_password_policy(password)
    assert caught.value.field == "password"


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("1234567890", id="ten-digits-no-composition-rule"),
        pytest.param("x" * 1024, id="exactly-1024"),
        pytest.param("correct horse battery staple", id="passphrase-with-spaces"),
        pytest.param("пароль-очень-длинный", id="unicode"),
    ],
)
def test_policy_accepts(password: str) -> None:
    check_password_policy(password)
