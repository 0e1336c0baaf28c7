"""A use case's unit of work is entered, used and left on the handler's one worker thread, and only once
the caller's cookie has been verified (issue 11: a transaction entered on one thread and left on another
while a handler still used its connection crashed the process; cookie-less floods held connections they
never needed). The session and principal are loaded fresh in every unit of work: revocation is immediate."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from litestar import Router, get
from litestar.di import NamedDependency, Provide
from litestar.testing import TestClient

from tests.fakes import InMemoryDirectory
from tow_core.errors import Conflict
from tow_core.identity import Session
from tow_core.unit_of_work import SessionCredential, Stores, Transactions
from tow_http.app import create_app
from tow_http.config import Settings
from tow_http.context import Services
from tow_http.session_cookie import SessionCookieSigner


class RecordingUnitOfWork:
    """A unit of work over a fake directory that records which thread entered and left each one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.directory = InMemoryDirectory()

    @contextmanager
    def __call__(self):
        self.events.append(("enter", threading.get_ident()))
        try:
            yield Stores(**{f.name: self.directory if f.name == "directory" else None for f in fields(Stores)})
        except BaseException:
            self.events.append(("rollback", threading.get_ident()))
            raise
        else:
            self.events.append(("commit", threading.get_ident()))


use_case_threads: list[int] = []


@dataclass(frozen=True)
class WhoAmI:
    transactions: Transactions

    def user_id(self, credential: SessionCredential, *, fail: bool) -> int:
        with self.transactions.acting_as(credential) as acting:
            use_case_threads.append(threading.get_ident())
            if fail:
                raise Conflict("the use case failed after using the connection")
            return acting.principal.user_id


@get("/whoami", sync_to_thread=True)
def whoami(caller: NamedDependency[SessionCredential], who: NamedDependency[WhoAmI], fail: bool = False) -> dict:
    return {"user": who.user_id(caller, fail=fail)}


@pytest.fixture
def world():
    unit_of_work = RecordingUnitOfWork()
    signer = SessionCookieSigner("k" * 40)
    services = Services(settings=msgspec.convert({}, Settings), transaction=unit_of_work, sign_in_log=None,
                        password_hasher=None, cookie_signer=signer)
    probe = Router(path="/t", route_handlers=[whoami],
                   dependencies={"who": Provide(lambda: WhoAmI(services.transactions), sync_to_thread=False)})
    app = create_app(services=services, schema_inspector=None, extra_routers=[probe])
    use_case_threads.clear()
    return app, unit_of_work, services


def sign_in(unit_of_work: RecordingUnitOfWork, services: Services) -> tuple[str, int]:
    """A live session for a new user: the signed cookie value and the user's id."""
    user = unit_of_work.directory.add_user("ada@example.com", "Ada", None, server_admin=False)
    token = services.cookie_signer.new_token()
    unit_of_work.directory.add_session(Session(services.cookie_signer.token_hash(token), user.id, None,
                                               datetime.now(UTC) + timedelta(hours=1)))
    return services.cookie_signer.sign(token), user.id


@pytest.mark.parametrize(("fail", "outcome", "status"), [(False, "commit", 200), (True, "rollback", 409)])
def test_the_unit_of_work_is_entered_used_and_left_on_the_handlers_thread(world, fail, outcome, status):
    app, unit_of_work, services = world
    cookie, user_id = sign_in(unit_of_work, services)
    with TestClient(app) as client:
        client.cookies.set(services.settings.security.session_cookie_name, cookie)
        response = client.get("/t/whoami", params={"fail": fail})
    assert response.status_code == status
    if not fail:
        assert response.json() == {"user": user_id}
    (enter, entered_on), (left, left_on) = unit_of_work.events
    assert (enter, left) == ("enter", outcome)
    assert entered_on == use_case_threads[0] == left_on
    assert entered_on != threading.get_ident()  # a worker thread, not the event loop's


@pytest.mark.parametrize("cookie", [None, "garbage", "forged.signature"])
def test_a_request_without_a_valid_cookie_is_refused_before_any_unit_of_work(world, cookie):
    app, unit_of_work, services = world
    with TestClient(app) as client:
        if cookie:
            client.cookies.set(services.settings.security.session_cookie_name, cookie)
        response = client.get("/t/whoami")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert unit_of_work.events == []


def test_a_validly_signed_but_unknown_session_is_checked_inside_the_unit_of_work(world):
    app, unit_of_work, services = world
    with TestClient(app) as client:
        client.cookies.set(services.settings.security.session_cookie_name,
                           services.cookie_signer.sign(services.cookie_signer.new_token()))
        response = client.get("/t/whoami")
    assert response.status_code == 401
    assert [event for event, _ in unit_of_work.events] == ["enter", "rollback"]


def test_a_session_revoked_between_two_requests_is_refused_on_the_next_one(world):
    app, unit_of_work, services = world
    cookie, user_id = sign_in(unit_of_work, services)
    with TestClient(app) as client:
        client.cookies.set(services.settings.security.session_cookie_name, cookie)
        assert client.get("/t/whoami").status_code == 200
        unit_of_work.directory.revoke_user_sessions(user_id, datetime.now(UTC))
        assert client.get("/t/whoami").status_code == 401
