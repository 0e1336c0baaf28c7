"""Sign-in throttling over the in-memory fakes, written as attacks (issue 11, part 3): a stranger's
failures must throttle the stranger, never lock the owner out of their usual address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import FakePasswordHasher, InMemoryDirectory, InMemorySignInLog
from tow_core.accounts import GENERIC_LOGIN_ERROR, ThrottlePolicy, authenticate, client_network
from tow_core.errors import NotAuthenticated, Throttled

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
HOME = "198.51.100.7"  # where the owner signs in from
POLICY = ThrottlePolicy()


class Server:
    """One server's accounts and sign-in log; ``attempt`` returns what the client would see."""

    def __init__(self) -> None:
        self.directory, self.log, self.hasher = InMemoryDirectory(), InMemorySignInLog(), FakePasswordHasher()
        self.owner = self.directory.add_user("ada@example.com", "Ada", self.hasher.hash(PASSWORD), server_admin=False)
        self.now = T0

    def attempt(self, ip: str, *, email: str = "ada@example.com", password: str = "a wrong guess",
                seconds_later: float = 1) -> str | int:
        """``"ok"``, ``"wrong"`` (the generic 401) or the Retry-After seconds of a 429."""
        self.now += timedelta(seconds=seconds_later)
        try:
            authenticate(self.directory, self.log, self.hasher, email=email, password=password, client_ip=ip,
                         now=self.now)
        except NotAuthenticated as exc:
            assert str(exc) == GENERIC_LOGIN_ERROR
            return "wrong"
        except Throttled as exc:
            assert "email" not in str(exc) and exc.retry_after_seconds >= 1
            return exc.retry_after_seconds
        return "ok"

    def owner_signs_in_from(self, ip: str) -> None:
        assert self.attempt(ip, password=PASSWORD) == "ok"


def stranger_ips(count: int) -> list[str]:
    return [f"203.0.113.{n}" for n in range(1, count + 1)]


def test_a_strangers_failures_from_many_addresses_do_not_lock_the_owner_out_of_their_usual_address():
    server = Server()
    server.owner_signs_in_from(HOME)
    outcomes = [server.attempt(ip) for ip in stranger_ips(40) for _ in range(5)]  # 200 guesses, 5 per address
    assert outcomes[: POLICY.max_failures_per_account] == ["wrong"] * POLICY.max_failures_per_account
    assert all(isinstance(o, int) for o in outcomes[POLICY.max_failures_per_account:])  # then 429 for strangers
    server.owner_signs_in_from(HOME)


def test_the_owners_usual_address_still_has_its_own_small_limit():
    server = Server()
    server.owner_signs_in_from(HOME)
    for ip in stranger_ips(25):
        for _ in range(5):
            server.attempt(ip)
    assert [server.attempt(HOME) for _ in range(5)] == ["wrong"] * 5
    assert isinstance(server.attempt(HOME, password=PASSWORD), int)  # 5 for (account, address) applies everywhere


def test_the_strangers_own_address_is_throttled_after_five_failures_even_with_the_right_password():
    server = Server()
    server.owner_signs_in_from(HOME)
    stranger = "203.0.113.66"
    assert [server.attempt(stranger) for _ in range(5)] == ["wrong"] * 5
    retry_after = server.attempt(stranger, password=PASSWORD)
    assert isinstance(retry_after, int) and retry_after <= POLICY.window.total_seconds()
    server.owner_signs_in_from(HOME)
    server.now += timedelta(seconds=retry_after)
    assert server.attempt(stranger, password=PASSWORD, seconds_later=0) == "ok"  # the window moved on


def test_one_address_is_throttled_across_accounts_after_twenty_failures():
    server = Server()
    server.owner_signs_in_from(HOME)
    stranger = "203.0.113.66"
    outcomes = [server.attempt(stranger, email=f"user{n}@example.com") for n in range(20)]
    assert outcomes == ["wrong"] * 20
    assert isinstance(server.attempt(stranger, password=PASSWORD), int)
    server.owner_signs_in_from(HOME)


def test_a_never_seen_address_of_the_owner_is_throttled_after_the_high_per_account_count():
    server = Server()
    server.owner_signs_in_from(HOME)
    for ip in stranger_ips(20):
        for _ in range(5):
            assert server.attempt(ip) == "wrong"
    hotel = "192.0.2.44"
    retry_after = server.attempt(hotel, password=PASSWORD)
    assert isinstance(retry_after, int) and retry_after <= POLICY.window.total_seconds()
    server.owner_signs_in_from(HOME)  # the usual address is not
    server.now = T0 + POLICY.window + timedelta(minutes=2)
    server.owner_signs_in_from(hotel)  # once the failures leave the window


def test_a_usual_address_is_forgotten_after_thirty_days_without_a_sign_in():
    server = Server()
    server.owner_signs_in_from(HOME)
    server.now += POLICY.known_address_for
    for ip in stranger_ips(20):
        for _ in range(5):
            server.attempt(ip)
    assert isinstance(server.attempt(HOME, password=PASSWORD), int)


def test_throttling_never_reveals_whether_an_email_exists():
    for stranger in ("203.0.113.66", "2001:db8:1:2::66"):
        known, unknown = Server(), Server()
        known.owner_signs_in_from(HOME)
        unknown.owner_signs_in_from(HOME)
        as_owner = [known.attempt(stranger) for _ in range(7)]
        as_nobody = [unknown.attempt(stranger, email="nobody@example.com") for _ in range(7)]
        assert as_owner == as_nobody and as_owner[:5] == ["wrong"] * 5
    known, unknown = Server(), Server()  # the per-account limit too, from a fresh address
    for ip in stranger_ips(20):
        for _ in range(5):
            known.attempt(ip)
            unknown.attempt(ip, email="nobody@example.com")
    assert known.attempt("192.0.2.1") == unknown.attempt("192.0.2.1", email="nobody@example.com")
    assert isinstance(known.attempt("192.0.2.1"), int)


def test_signing_in_forgets_that_addresses_failures_for_that_account_only():
    server = Server()
    assert [server.attempt(HOME) for _ in range(4)] == ["wrong"] * 4
    server.owner_signs_in_from(HOME)
    assert [server.attempt(HOME) for _ in range(5)] == ["wrong"] * 5  # counting (account, address) anew
    assert isinstance(server.attempt(HOME), int)
    mallory = server.directory.add_user("mallory@example.com", "M", server.hasher.hash("mallory's own pw"),
                                        server_admin=False)
    assert mallory.id != server.owner.id
    stranger = "203.0.113.66"
    for n in range(19):
        server.attempt(stranger, email=f"user{n}@example.com")
    assert server.attempt(stranger, email="mallory@example.com", password="mallory's own pw") == "ok"
    server.attempt(stranger, email="user19@example.com")
    # Her own successful sign-in does not reset her address's count: the 21st try is refused.
    assert isinstance(server.attempt(stranger, email="user20@example.com"), int)


def test_an_ipv6_client_counts_by_its_slash_64():
    server = Server()
    server.owner_signs_in_from("2001:db8:aa:1::1")
    attacker = [f"2001:db8:bad:1::{n:x}" for n in range(1, 7)]  # six addresses, one network
    assert [server.attempt(ip) for ip in attacker[:5]] == ["wrong"] * 5
    assert isinstance(server.attempt(attacker[5], password=PASSWORD), int)
    for ip in stranger_ips(20):
        for _ in range(5):
            server.attempt(ip)
    server.owner_signs_in_from("2001:db8:aa:1:8c3e:77ff:fe12:3456")  # a new privacy address, same network


@pytest.mark.parametrize(("client_ip", "counted_as"), [
    pytest.param("203.0.113.9", "203.0.113.9", id="ipv4"),
    pytest.param("::ffff:203.0.113.9", "203.0.113.9", id="ipv4-mapped-ipv6"),
    pytest.param("2001:db8:aa:1:8c3e:77ff:fe12:3456", "2001:db8:aa:1::/64", id="ipv6-by-its-64"),
    pytest.param("2001:DB8:AA:1::1", "2001:db8:aa:1::/64", id="ipv6-case-folded"),
    pytest.param("fe80::1%eth0", "fe80::/64", id="ipv6-zone-dropped"),
    pytest.param("testclient", "testclient", id="not-an-address"),
    pytest.param("unknown", "unknown", id="no-client"),
])
def test_client_network(client_ip, counted_as):
    assert client_network(client_ip) == counted_as
