"""`tow users create-admin | list-admins | set-password (reset-password)` from the operator's shell (SPEC §12)."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from tests.e2e.org_world import FIRST, World
from tests.postgres_fixtures import SECRET
from tow_http.cli import main

ADMIN_PASSWORD = "a long operator password"


@pytest.fixture
def shell(tmp_path, fresh_database_url, monkeypatch):
    """Run `tow` in-process against the test's database; ``stdin`` is what the operator pipes in."""
    (tmp_path / "tow.yaml").write_text("")
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("APP_SECRET", SECRET)

    def run(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return main(["--config", str(tmp_path / "tow.yaml"), *argv])

    return run


def browser(container) -> TestClient:
    return TestClient(container.app(), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)


def login(container, email: str, password: str) -> int:
    return browser(container).post("/api/auth/login", json={"email": email, "password": password}).status_code


def test_create_admin_on_a_fresh_server_creates_the_first_server_admin(make_container, shell, capsys):
    container = make_container()
    assert shell("users", "list-admins") == 1
    assert "create-admin" in capsys.readouterr().out

    assert shell("users", "create-admin", "Root@Example.com", "--name", "Root", "--password-stdin",
                 stdin=ADMIN_PASSWORD + "\n") == 0
    assert "first server admin" in capsys.readouterr().out
    assert shell("users", "list-admins") == 0
    assert capsys.readouterr().out.split("\t")[1:] == ["root@example.com", "Root\n"]
    assert login(container, "root@example.com", ADMIN_PASSWORD) == 200
    # The web's first registration is closed now: the server has an account.
    assert browser(container).post("/api/auth/register-first", json=FIRST).status_code == 403


def test_create_admin_refuses_a_weak_password_or_a_password_in_argv_and_creates_nothing(make_container, shell,
                                                                                        capsys):
    container = make_container()
    assert shell("users", "create-admin", "root@example.com", "--password-stdin", stdin="short\n") == 1
    assert "password" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # there is no way to put the password on the command line
        shell("users", "create-admin", "root@example.com", "--password", ADMIN_PASSWORD)
    assert shell("users", "create-admin", "root@example.com", stdin=ADMIN_PASSWORD) == 1  # no terminal, no flag
    assert "--password-stdin" in capsys.readouterr().err
    with container.engine().connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0


def test_on_a_server_with_accounts_create_admin_promotes_an_existing_account_audited(make_container, shell, capsys):
    world = World(make_container())
    assert shell("users", "create-admin", "nobody@example.com", "--password-stdin", stdin=ADMIN_PASSWORD) == 1
    assert "no account with email nobody@example.com" in capsys.readouterr().err

    assert shell("users", "create-admin", "BOB@example.com") == 0  # no password asked: the account exists
    assert "is server admin" in capsys.readouterr().out
    assert shell("users", "list-admins") == 0
    assert [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()] == ["ada@example.com",
                                                                                     "bob@example.com"]
    assert login(world.container, "bob@example.com", "another good password") == 200  # password untouched
    with world.container.engine().connect() as conn:
        audit = conn.execute(sa.text(
            "SELECT organisation_id, actor_id, action, target, details FROM audit_log ORDER BY id DESC LIMIT 1"
        )).one()
    assert audit[:4] == (None, None, "server_admin.granted", f"user:{world.bob_id}")
    assert audit[4]["via"] == "tow users create-admin"

    world.sql("UPDATE users SET is_active = false WHERE id = :id", id=world.cy_id)
    assert shell("users", "create-admin", "cy@example.com") == 1
    assert "deactivated" in capsys.readouterr().err


def test_reset_password_signs_the_account_out_everywhere(make_container, shell, capsys):
    world = World(make_container())
    other_browser = world.client()
    assert login(world.container, "bob@example.com", "another good password") == 200
    assert other_browser.post("/api/auth/login", json={"email": "bob@example.com",
                                                       "password": "another good password"}).status_code == 200
    assert world.bob.get("/api/me").status_code == 200

    assert shell("users", "reset-password", "bob@example.com", stdin="a brand new password\n") == 0
    assert "session(s) signed out" in capsys.readouterr().out
    assert world.bob.get("/api/me").status_code == 401 and other_browser.get("/api/me").status_code == 401
    assert world.ada.get("/api/me").status_code == 200  # nobody else is signed out
    assert login(world.container, "bob@example.com", "another good password") == 401
    assert login(world.container, "bob@example.com", "a brand new password") == 200
    assert shell("users", "set-password", "nobody@example.com", stdin="a brand new password\n") == 1
    assert "no account with email nobody@example.com" in capsys.readouterr().err
