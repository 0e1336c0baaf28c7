"""A request's unit of work is entered, used and left on one thread, and only once the caller's cookie
has been verified (issue 11: a transaction entered on one thread and left on another while a handler
still used its connection crashed the process; cookie-less floods held connections they never needed)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import fields

import msgspec
import pytest
from litestar import Router, get
from litestar.di import NamedDependency
from litestar.testing import TestClient

from tests.fakes import InMemoryDirectory
from tow_core.errors import Conflict
from tow_http.app import create_app
from tow_http.config import Settings
from tow_http.context import Db, Services, SignedIn, Stores, in_unit_of_work
from tow_http.session_cookie import SessionCookieSigner


class RecordingTransactions:
    """A transaction factory that records which thread entered and left each transaction."""

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


handler_threads: list[int] = []


@get("/db", sync_to_thread=True)
@in_unit_of_work
def uses_db(db: NamedDependency[Db], fail: bool = False) -> dict:
    handler_threads.append(threading.get_ident())
    if fail:
        raise Conflict("the handler failed after using the connection")
    return {"now": db.now.isoformat()}


@get("/signed-in", sync_to_thread=True)
@in_unit_of_work
def needs_sign_in(signed_in: NamedDependency[SignedIn]) -> dict:
    return {"user": signed_in.principal.user_id}


@pytest.fixture
def app_and_transactions():
    transactions = RecordingTransactions()
    services = Services(settings=msgspec.convert({}, Settings), transaction=transactions, sign_in_log=None,
                        password_hasher=None, cookie_signer=SessionCookieSigner("k" * 40))
    app = create_app(services=services, schema_inspector=None,
                     extra_routers=[Router(path="/t", route_handlers=[uses_db, needs_sign_in])])
    handler_threads.clear()
    return app, transactions, services


@pytest.mark.parametrize(("fail", "outcome", "status"), [(False, "commit", 200), (True, "rollback", 409)])
def test_the_transaction_is_entered_used_and_left_on_the_handlers_thread(app_and_transactions, fail, outcome,
                                                                         status):
    app, transactions, _ = app_and_transactions
    with TestClient(app) as client:
        response = client.get("/t/db", params={"fail": fail})
    assert response.status_code == status
    (enter, entered_on), (left, left_on) = transactions.events
    assert (enter, left) == ("enter", outcome)
    assert entered_on == handler_threads[0] == left_on
    assert entered_on != threading.get_ident()  # a worker thread, not the event loop's


@pytest.mark.parametrize("cookie", [None, "garbage", "forged.signature"])
def test_a_request_without_a_valid_cookie_is_refused_before_any_transaction(app_and_transactions, cookie):
    app, transactions, services = app_and_transactions
    with TestClient(app) as client:
        if cookie:
            client.cookies.set(services.settings.security.session_cookie_name, cookie)
        response = client.get("/t/signed-in")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert transactions.events == []


def test_a_validly_signed_but_unknown_session_is_checked_inside_the_transaction(app_and_transactions):
    app, transactions, services = app_and_transactions
    with TestClient(app) as client:
        client.cookies.set(services.settings.security.session_cookie_name,
                           services.cookie_signer.sign(services.cookie_signer.new_token()))
        response = client.get("/t/signed-in")
    assert response.status_code == 401
    assert [event for event, _ in transactions.events] == ["enter", "rollback"]


def test_a_handler_without_db_or_signed_in_is_refused_at_import():
    with pytest.raises(TypeError, match="neither signed_in nor db"):
        in_unit_of_work(lambda services: None)
