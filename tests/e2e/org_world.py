"""One organisation shared by every test of a module (test_docs_api, test_tickets_api), built through the
real composition root on its own migrated database: registering users and migrating once per module
keeps those files fast. Tests create their own records and only assert on those.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from dependency_injector import providers
from litestar.testing import TestClient

from tests.postgres_fixtures import SECRET
from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
from tow_http.composition import Container
from tow_http.config import load_config

FIRST = {"email": "ada@example.com", "display_name": "Ada", "password": "correct horse battery",
         "organisation_name": "Acme"}


class World:
    """Ada owns Acme; Bob and Cy are plain members. Project APP is restricted with Bob as viewer, OPS is
    open, SEC is restricted without Bob or Cy."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.ada = self.client()
        self.org = self.ada.post("/api/auth/register-first", json=FIRST).json()["active_organisation_id"]
        self.ada_id = self.ada.get("/api/me").json()["id"]
        self.bob, self.bob_id = self.join("bob")
        self.cy, self.cy_id = self.join("cy")
        self.projects = {}
        for key, visibility in (("APP", "restricted"), ("OPS", "open"), ("SEC", "restricted")):
            self.projects[key] = self.ada.post(f"{self.base}/projects", json={
                "key": key, "name": f"{key} project", "visibility": visibility}).json()["id"]
        self.ada.post(f"{self.base}/projects/{self.projects['APP']}/grants",
                      json={"user_id": self.bob_id, "role": "viewer"})

    @property
    def base(self) -> str:
        return f"/api/organisations/{self.org}"

    def client(self) -> TestClient:
        return TestClient(self.container.app(), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)

    def join(self, name: str) -> tuple[TestClient, int]:
        client = self.client()
        token = self.ada.post(f"{self.base}/invites", json={}).json()["token"]
        user = client.post("/api/auth/register", json={"invite_token": token, "email": f"{name}@example.com",
                                                       "display_name": name.title(),
                                                       "password": "another good password"}).json()
        return client, user["id"]

    def scope(self, key: str) -> dict:
        return {"kind": "project", "id": self.projects[key]}

    def create(self, client: TestClient, **body) -> dict:
        response = client.post(f"{self.base}/records", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def record(self, client: TestClient, display_id: str) -> dict:
        return client.get(f"{self.base}/records/{display_id}").json()

    def sql(self, statement: str, **params) -> None:
        """Write rows directly, as older data or an import would have left them (the API refuses these)."""
        with self.container.engine().begin() as conn:
            conn.execute(sa.text(statement), params)


def shared_world(embedded_postgres, tmp_path_factory, name: str):
    database = f"{name}_{os.getpid()}"
    embedded_postgres.ensure_database(database)
    config_path = tmp_path_factory.mktemp(name) / "tow.yaml"
    config_path.write_text("")
    config = load_config(config_path, environ={"APP_SECRET": SECRET})
    container = Container(config=config, database_url=embedded_postgres.url(database))
    container.password_hasher.override(providers.Object(Argon2PasswordHasher(time_cost=1, memory_cost=8,
                                                                             parallelism=1)))
    container.schema_migrator().upgrade()
    try:
        yield World(container)
    finally:
        container.engine().dispose()
