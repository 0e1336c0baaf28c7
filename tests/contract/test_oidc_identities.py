"""The ``OidcIdentities`` port's behaviour (``tow_core.oidc``), against its in-memory fake
(``InMemoryOidcIdentities``) and ``PgOidcIdentities`` on a real PostgreSQL (migration 0023): identities linked
by (issuer, subject), one account each; organisations found by name (the oldest where names repeat); what a
rule granted, kept with its membership and gone with it; a session's ID token, for the provider's logout.

On PostgreSQL each test runs in one transaction that is rolled back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.fake_oidc_identities import InMemoryOidcIdentities
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.oidc_identities import PgOidcIdentities
from tow_core.access import OrgRole
from tow_core.identity import Session, WorkflowMode
from tow_core.oidc import MappedRole

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISSUER = "https://login.example.com/realms/company"


@pytest.fixture(scope="module")
def oidc_engine(embedded_postgres):
    embedded_postgres.ensure_database("oidc_identities_contract")
    engine = create_engine(embedded_postgres.url("oidc_identities_contract"), PoolOptions(pool_size=2, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class World:
    """Organisations Acme (twice: an older and a newer one with the same name) and Beta; ada and bob."""

    def __init__(self, directory, identities) -> None:
        self.directory, self.store = directory, identities
        suffix = time.monotonic_ns()
        self.acme = directory.add_organisation(f"Acme {suffix}", WorkflowMode.ORGANIZATION).id
        self.acme_again = directory.add_organisation(f"Acme {suffix}", WorkflowMode.ORGANIZATION).id
        self.beta = directory.add_organisation(f"Beta {suffix}", WorkflowMode.ORGANIZATION).id
        self.names = {"acme": f"Acme {suffix}", "beta": f"Beta {suffix}"}
        self.ada, self.bob = (directory.add_user(f"{n}-{suffix}@example.com", n, None, server_admin=False).id
                              for n in ("ada", "bob"))


@pytest.fixture(params=["fake", "postgres"])
def world(request) -> World:
    if request.param == "fake":
        directory = InMemoryDirectory(lambda: T)
        return World(directory, InMemoryOidcIdentities(directory))
    conn = request.getfixturevalue("oidc_engine").connect()
    transaction = conn.begin()
    request.addfinalizer(conn.close)
    request.addfinalizer(transaction.rollback)
    return World(PgDirectory(conn), PgOidcIdentities(conn))


def test_identities_are_linked_by_issuer_and_subject_and_one_names_one_account(world):
    store = world.store
    assert store.linked_user(ISSUER, "sub-1") is None
    store.link(ISSUER, "sub-1", world.ada, T)
    store.link("https://other.example.com", "sub-1", world.bob, T + timedelta(1))  # same subject, other issuer
    store.link(ISSUER, "sub-2", world.ada, T + timedelta(2))  # an account may have several identities
    assert store.linked_user(ISSUER, "sub-1") == world.ada
    assert store.linked_user("https://other.example.com", "sub-1") == world.bob
    assert store.linked_user(ISSUER, "SUB-1") is None and store.linked_user(ISSUER + "/", "sub-1") is None
    assert list(store.identities_of(world.ada)) == [(ISSUER, "sub-1"), (ISSUER, "sub-2")]
    store.record_login(ISSUER, "sub-1", T + timedelta(3))
    assert store.linked_user(ISSUER, "sub-1") == world.ada
    with pytest.raises((ValueError, sa.exc.IntegrityError)):
        store.link(ISSUER, "sub-1", world.bob, T)  # never moved to another account


def test_organisations_are_found_by_name_the_oldest_where_names_repeat(world):
    found = world.store.organisations_named([world.names["acme"], world.names["beta"], "Nowhere"])
    assert dict(found) == {world.names["acme"]: world.acme, world.names["beta"]: world.beta}
    assert dict(world.store.organisations_named([])) == {}


def test_what_a_rule_granted_is_kept_with_its_membership_and_goes_with_it(world):
    store, directory = world.store, world.directory
    directory.set_membership(world.acme, world.ada, OrgRole.MEMBER)
    directory.set_membership(world.beta, world.ada, OrgRole.ADMIN)
    store.put_mapped_role(world.ada, world.acme, MappedRole(OrgRole.MEMBER, None))
    store.put_mapped_role(world.ada, world.beta, MappedRole(OrgRole.MEMBER, None))
    store.put_mapped_role(world.ada, world.beta, MappedRole(OrgRole.ADMIN, OrgRole.MEMBER))  # replaced
    assert dict(store.mapped_roles(world.ada)) == {world.acme: MappedRole(OrgRole.MEMBER, None),
                                                   world.beta: MappedRole(OrgRole.ADMIN, OrgRole.MEMBER)}
    assert dict(store.mapped_roles(world.bob)) == {}
    store.forget_mapped_role(world.ada, world.beta)
    store.forget_mapped_role(world.ada, world.beta)  # forgetting twice is harmless
    directory.remove_membership(world.acme, world.ada)  # removed by hand: the grant goes with it
    assert dict(store.mapped_roles(world.ada)) == {}


def test_a_grant_needs_the_membership_it_describes(world):
    with pytest.raises((ValueError, sa.exc.IntegrityError)):
        world.store.put_mapped_role(world.bob, world.acme, MappedRole(OrgRole.MEMBER, None))


def test_a_sessions_id_token_is_kept_for_the_providers_logout(world):
    world.directory.add_session(Session("hash-a", world.ada, None, T + timedelta(days=1)))
    world.store.remember_id_token("hash-a", "header.payload.signature")
    assert world.store.id_token_of("hash-a") == "header.payload.signature"
    assert world.store.id_token_of("hash-unknown") is None
    with pytest.raises((ValueError, sa.exc.IntegrityError)):
        world.store.remember_id_token("hash-without-a-session", "x.y.z")
