"""Import of organisation exports: a lossless round trip (export → import elsewhere → re-export gives the
same document but ``exported_at``), sequences that continue, imported people who get in through
``tow users set-password``, server-admin-only API, and tampered files — hypothesis mutations of a valid
export — refused with the offending JSON path and leaving the database unchanged."""

from __future__ import annotations

import base64
import copy
import io
import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from dependency_injector import providers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.org_world import World
from tests.postgres_fixtures import SECRET
from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
from tow_adapters.postgres.snapshot_sources import PgSnapshotSources
from tow_core.errors import Conflict, InvalidInput
from tow_core.imports import import_organisation
from tow_http import cli
from tow_http.composition import Container, build_job_worker
from tow_http.config import load_config

TABLES = ("users", "organisations", "memberships", "groups", "group_members", "projects", "project_grants",
          "records", "record_sequences", "record_references", "doc_revisions", "ticket_comments", "ticket_activity",
          "ticket_links", "memory_diffs", "snapshot_sources", "audit_log")
TAMPER_STATS = {"tried": 0, "refused": 0, "changed_database": 0}
ROOT = {"email": "root@example.com", "display_name": "Root", "password": "correct horse battery",
        "organisation_name": "Hosting"}


def container_on(embedded_postgres, directory: Path, name: str) -> tuple[Container, Path]:
    embedded_postgres.ensure_database(name)
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "tow.yaml"
    config_path.write_text(f"exports:\n  export_storage_path: {directory / 'exports'}\n")
    # For the `tow` commands run in-process against the same database.
    (directory / ".env").write_text(f"APP_SECRET={SECRET}\nDATABASE_URL={embedded_postgres.url(name)}\n")
    container = Container(config=load_config(config_path, environ={"APP_SECRET": SECRET}),
                          database_url=embedded_postgres.url(name))
    container.password_hasher.override(providers.Object(Argon2PasswordHasher(time_cost=1, memory_cost=8,
                                                                             parallelism=1)))
    container.schema_migrator().upgrade()
    return container, config_path


def build_rich_organisation(world: World) -> None:
    """Every kind of row an organisation export carries, through the API."""
    ada, base = world.ada, world.base
    group = ada.post(f"{base}/groups", json={"name": "Reviewers"}).json()["id"]
    ada.put(f"{base}/groups/{group}/members/{world.bob_id}")
    ada.post(f"{base}/projects/{world.projects['SEC']}/grants", json={"group_id": group, "role": "member"})
    handbook = world.create(ada, type="doc", scope={"kind": "organisation"}, title="Handbook", body="v1")
    ada.patch(f"{base}/records/{handbook['display_id']}", json={"version": 1, "body": "v2, see DOC-1"})
    world.create(ada, type="doc", scope={"kind": "organisation"}, title="Chapter", body="child",
                 fields={"parent_id": handbook["id"]})
    world.create(ada, type="doc", scope={"kind": "group", "id": group}, title="Reviewer notes", body="group")
    private = world.create(ada, type="doc", scope={"kind": "user", "id": world.ada_id}, title="Ada private",
                           body="p")
    ops = world.create(ada, type="ticket", scope=world.scope("OPS"), title="Rotate keys", body="per DOC-1",
                       fields={"assignee_id": world.bob_id, "priority": 2})
    other = world.create(world.cy, type="ticket", scope={"kind": "organisation"}, title="Org task", body="")
    ada.post(f"{base}/records/{ops['display_id']}/comments", json={"body": "on it"})
    ada.patch(f"{base}/records/{ops['display_id']}", json={"version": 1, "status": "in_progress"})
    ada.post(f"{base}/records/{ops['display_id']}/links", json={"kind": "blocks", "target": other["display_id"]})
    world.create(ada, type="decision", scope=world.scope("SEC"), title="Use SSO", body="",
                 fields={"decision": "yes"})
    world.create(ada, type="risk", scope=world.scope("APP"), title="Vendor lock-in", body="",
                 fields={"owner_id": world.cy_id, "severity": 4})
    week = world.create(ada, type="snapshot", scope={"kind": "organisation"}, title="Week 1", body="state",
                        fields={"snapshot_type": "weekly_review"})
    with world.container.engine().begin() as conn:  # as a generation pins them (the API writes no pins)
        PgSnapshotSources(conn).pin(world.org, week["id"], [(handbook["id"], 2), (ops["id"], 1), (private["id"], 1)])
    diff = ada.post(f"{base}/memory-diffs", json={
        "scope": {"kind": "organisation"}, "source": "doc", "source_id": handbook["display_id"],
        "rationale": "stated", "operations": [{"op": "create", "title": "Releases on Tuesday", "body": "",
                                              "fields": {"memory_type": "commitment"}}]}).json()
    assert ada.post(f"{base}/memory-diffs/{diff['id']}/approve", json={}).status_code == 200
    assert ada.patch(base, json={"require_second_reviewer": True}).status_code == 200  # travels with the file
    ada.post(f"{base}/memory-diffs", json={
        "scope": world.scope("OPS"), "source": "manual", "rationale": "pending one",
        "operations": [{"op": "create", "title": "Pending fact", "body": "", "fields": {"memory_type": "fact"}}]})
    for record, name, content in ((handbook, "notes.txt", b"release notes\n"), (ops, "diagram.png", png()),
                                  (private, "mine.txt", b"private")):
        upload = ada.post(f"/api/organisations/{world.org}/uploads", params={"filename": name}, content=content,
                          headers={"content-type": "application/octet-stream"})
        assert upload.status_code == 201, upload.text
        attached = ada.put(f"{base}/records/{record['display_id']}/attachments/{upload.json()['id']}")
        assert attached.status_code == 200, attached.text


def png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (3, 2), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


def organisation_export(world: World, client) -> bytes:
    export = client.post(f"{world.base}/exports", json={"kind": "organisation",
                                                         "include_attachment_contents": True}).json()
    c = world.container
    build_job_worker(c.engine(), c.config(), c.export_files(), c.upload_store()).drain()
    response = client.get(f"/api/exports/{export['id']}/download")
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture(scope="module")
def exported(embedded_postgres, tmp_path_factory) -> bytes:
    container, _ = container_on(embedded_postgres, tmp_path_factory.mktemp("source"), f"src_{os.getpid()}")
    try:
        world = World(container)
        build_rich_organisation(world)
        return organisation_export(world, world.ada)
    finally:
        container.engine().dispose()


_target_numbers = iter(range(10_000))


@pytest.fixture
def target(embedded_postgres, tmp_path):
    container, config_path = container_on(embedded_postgres, tmp_path / "target",
                                          f"dst_{os.getpid()}_{next(_target_numbers)}")
    world_client = World.__new__(World)
    world_client.container = container
    root = world_client.client()
    assert root.post("/api/auth/register-first", json=ROOT).status_code == 201
    yield container, config_path, root
    container.engine().dispose()


def counts(container: Container) -> dict[str, int]:
    with container.engine().connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}  # noqa: S608


def restore(container: Container, data: bytes):
    with container.services().transaction() as stores:
        services = container.services()
        return import_organisation(stores.directory, stores.organisation_import, None, file=io.BytesIO(data),
                                   upload_store=services.upload_store, images=services.images)


def without_export_time(document: dict) -> dict:
    return {k: v for k, v in document.items() if k != "exported_at"}


def test_the_export_has_every_kind_of_history(exported):
    document = json.loads(exported)
    by_id = {r["display_id"]: r for r in document["records"]}
    assert "Ada private" not in {r["title"] for r in document["records"]}
    assert by_id["DOC-1"]["revisions"][0]["body"] == "v1"
    assert by_id["DOC-2"]["fields"]["parent_id"] == "DOC-1"
    assert by_id["OPS-1"]["fields"]["assignee_id"] == "bob@example.com"
    assert by_id["OPS-1"]["comments"][0]["body"] == "on it"
    assert [a["field"] for a in by_id["OPS-1"]["activity"]][-1] == "status"
    assert by_id["OPS-1"]["links"][0]["target"] == "TKT-1"
    assert by_id["OPS-1"]["references"] == ["DOC-1"]
    assert by_id["RSK-1"]["fields"]["owner_id"] == "cy@example.com"
    # Pinned sources travel with their snapshot, but not one to a private doc (an organisation export has none).
    assert by_id["SNP-1"]["sources"] == [{"record": "DOC-1", "version": 2}, {"record": "OPS-1", "version": 1}]
    assert by_id["DOC-1"]["sources"] == []
    assert {d["status"] for d in document["memory_diffs"]} == {"approved", "pending"}
    [reviewed] = [r for r in document["records"] if r["title"] == "Releases on Tuesday"]
    assert (reviewed["fields"]["proposed_by"], reviewed["fields"]["approved_by"]) == ("ada@example.com",) * 2
    assert "memory_diff_id" not in reviewed["fields"]  # the diff's id here means nothing in the file
    assert document["organisation"]["require_second_reviewer"] is True
    attachments = [(a["record"], a["original_name"], a["image_format"], base64.b64decode(a["content_base64"]))
                   for a in document["attachments"]]
    assert attachments == [("DOC-1", "notes.txt", None, b"release notes\n"), ("OPS-1", "diagram.png", "png", png())]
    assert document["groups"][0] == {"name": "Reviewers", "created_at": document["groups"][0]["created_at"],
                                     "members": ["bob@example.com"]}


def test_round_trip_through_the_api_and_set_password(exported, target, monkeypatch):
    container, config_path, root = target
    response = root.post("/api/server/imports", content=exported)
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["organisation_name"] == "Acme"
    assert report["counts"]["records"] == len(json.loads(exported)["records"])
    assert report["counts"]["people_created"] == 3
    assert (report["counts"]["attachments"], report["counts"]["attachments_without_content"]) == (2, 0)
    org = report["organisation_id"]
    # Imported people have no password until an operator sets one.
    monkeypatch.setattr("sys.stdin", io.StringIO("a brand new password\n"))
    assert cli.main(["--config", str(config_path), "users", "set-password", "ada@example.com"]) == 0
    ada = World.client(type("W", (), {"container": container})())
    assert ada.post("/api/auth/login", json={"email": "ada@example.com",
                                             "password": "a brand new password"}).status_code == 200
    world = World.__new__(World)
    world.container, world.org = container, org
    again = organisation_export(world, ada)
    assert without_export_time(json.loads(again)) == without_export_time(json.loads(exported))
    # Attachments came back with their contents, readable by who can read their record.
    listed = ada.get(f"/api/organisations/{org}/records/OPS-1/attachments").json()
    assert [u["name"] for u in listed] == ["diagram.png"]
    assert ada.get(f"/api/uploads/{listed[0]['id']}/content").content == png()
    # Numbering continues where the source left off.
    assert world.create(ada, type="doc", scope={"kind": "organisation"}, title="New", body="")["display_id"] == "DOC-5"
    audit = root.get(f"/api/organisations/{org}/audit").status_code
    assert audit == 404  # root is not a member of the imported organisation
    entries = ada.get(f"/api/organisations/{org}/audit?action=organisation.imported").json()["items"]
    assert [(e["actor_id"], e["details"]["records"]) for e in entries] == [(root.get("/api/me").json()["id"],
                                                                            report["counts"]["records"])]


def test_only_server_admins_import_through_the_api(exported, target):
    container, _, root = target
    before = counts(container)
    stranger = World.client(type("W", (), {"container": container})())
    assert stranger.post("/api/server/imports", content=exported).status_code == 401
    assert counts(container) == before


def test_an_organisation_is_never_imported_twice(exported, target):
    container, config_path, _ = target
    restore(container, exported)
    before = counts(container)
    with pytest.raises(Conflict) as refused:
        restore(container, exported)
    assert refused.value.field == "$.organisation.name"
    assert counts(container) == before


def test_tow_import_restores_a_file_and_reports_counts(exported, target, tmp_path, monkeypatch, capsys):
    container, config_path, _ = target
    path = tmp_path / "acme.json"
    path.write_bytes(exported)
    assert cli.main(["--config", str(config_path), "import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "imported organisation 'Acme'" in out and "records: " in out
    bad = tmp_path / "bad.json"
    bad.write_text(exported.decode().replace('"kind": "organisation"', '"kind": "member"', 1))
    assert cli.main(["--config", str(config_path), "import", str(bad)]) == 1
    assert "$.kind" in capsys.readouterr().err


# --- tampering ---------------------------------------------------------------------------------------------

# Values typed Any in the format (record fields, activity values, diff operations) accept any JSON, so a
# type change inside them is not tampering the format can see; everything else is checked.
_FREE_FORM = {"fields", "old_value", "new_value", "operations", "outcomes"}


def _paths(value, path=()):
    """(path, value) for every object member and array item outside free-form subtrees."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), item
            if key not in _FREE_FORM:
                yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index), item
            yield from _paths(item, (*path, index))


def json_path(path) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _parent(document, path):
    for step in path[:-1]:
        document = document[step]
    return document


def _wrong_type(value):
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int):
        return "12"
    if isinstance(value, str | None):
        return 12345
    return "surprise" if isinstance(value, list | dict) else None


@st.composite
def tampered(draw, original: dict):
    document = copy.deepcopy(original)
    kind = draw(st.sampled_from(["wrong_type", "missing_key", "unknown_key", "dangling", "duplicate", "nul"]))
    paths = list(_paths(document))
    if kind == "nul":  # PostgreSQL cannot store U+0000: refused at the text that holds it, not a 500
        path = draw(st.sampled_from([p for p, v in paths if isinstance(v, str)]))
        parent = _parent(document, path)
        parent[path[-1]] = parent[path[-1]][:1] + "\x00" + parent[path[-1]][1:]
        return document, json_path(path), False
    if kind in ("wrong_type", "missing_key"):
        candidates = [p for p, _ in paths if isinstance(p[-1], str) or kind == "wrong_type"]
        if kind == "wrong_type":  # old_value/new_value are any JSON: no type to get wrong
            candidates = [p for p in candidates if p[-1] not in ("old_value", "new_value")]
        else:  # files written before pinned sources existed have none: their absence is no error
            # ... nor a second-reviewer setting
            candidates = [p for p in candidates if p[-1] not in ("sources", "require_second_reviewer")]
        path = draw(st.sampled_from(candidates))
        parent = _parent(document, path)
        if kind == "wrong_type":
            parent[path[-1]] = _wrong_type(parent[path[-1]])
        else:
            del parent[path[-1]]
            path = path[:-1]  # a missing key is reported at its object
        return document, json_path(path), False
    if kind == "unknown_key":
        objects = [()] + [p for p, v in paths if isinstance(v, dict) and p[-1] not in _FREE_FORM]
        path = draw(st.sampled_from(objects))
        target = _parent(document, (*path, None))
        target["injected"] = True
        return document, json_path(path), False
    records = document["records"]
    index = draw(st.integers(0, len(records) - 1))
    if kind == "duplicate":
        records.append(copy.deepcopy(records[index]))
        return document, f"$.records[{len(records) - 1}].display_id", True
    victim = draw(st.sampled_from(["reference", "scope_group", "author", "member", "grant_group", "content",
                                   "attachment_record", "source", "approver", "diff_id"]))
    if victim in ("approver", "diff_id"):  # a reviewed memory item: who approved it, never which diff by id
        item = next(i for i, r in enumerate(records) if r["fields"].get("approved_by"))
        if victim == "approver":
            records[item]["fields"]["approved_by"] = "mallory@example.com"
            return document, f"$.records[{item}].fields.approved_by", True
        records[item]["fields"]["memory_diff_id"] = 1
        return document, f"$.records[{item}].fields.memory_diff_id", True
    if victim == "source":  # a pin to a record the file does not hold, or on a record that is not a snapshot
        records[index]["sources"].append({"record": "DOC-999", "version": 1})
        if records[index]["type"] != "snapshot":
            return document, f"$.records[{index}].sources", True
        return document, f"$.records[{index}].sources[{len(records[index]['sources']) - 1}].record", True
    if victim == "content":
        attachment = draw(st.integers(0, len(document["attachments"]) - 1))
        document["attachments"][attachment]["content_base64"] = base64.b64encode(b"evil").decode()
        return document, f"$.attachments[{attachment}].size_bytes", True
    if victim == "attachment_record":
        document["attachments"][0]["record"] = "DOC-999"
        return document, "$.attachments[0].record", True
    if victim == "reference":
        records[index]["references"].append("DOC-999")
        return document, f"$.records[{index}].references[{len(records[index]['references']) - 1}]", True
    if victim == "scope_group":
        records[index]["scope"] = {"kind": "group", "group": "Nobody's group"}
        return document, f"$.records[{index}].scope.group", True
    if victim == "author":
        records[index]["author"] = "mallory@example.com"
        return document, f"$.records[{index}].author", True
    if victim == "member":
        document["members"][0]["user"] = "mallory@example.com"
        return document, "$.members[0].user", True
    project = next(i for i, p in enumerate(document["projects"]) if p["grants"])
    document["projects"][project]["grants"][0] = {"user": None, "group": "Ghosts", "role": "admin",
                                                  "created_at": document["projects"][project]["grants"][0]["created_at"]}
    return document, f"$.projects[{project}].grants[0].group", True


def test_tampered_files_are_refused_with_the_path_and_change_nothing(exported, target):
    container, _, _ = target
    original = json.loads(exported)
    before = counts(container)
    stats = {"tried": 0}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=tampered(original))
    def check(case):
        document, expected_path, exact = case
        with pytest.raises(InvalidInput) as refused:
            restore(container, json.dumps(document).encode())
        reported = refused.value.field
        assert reported is not None and refused.value.message.startswith(reported)
        if exact:
            assert reported == expected_path
        else:  # the decoder reports the innermost value it could not accept: at or inside the tampered spot
            assert reported.startswith(expected_path) or expected_path.startswith(reported), (reported, expected_path)
        stats["tried"] += 1
        TAMPER_STATS["refused"] += 1

    check()
    TAMPER_STATS["tried"] += stats["tried"]
    TAMPER_STATS["changed_database"] += counts(container) != before
    assert stats["tried"] >= 100
    assert counts(container) == before
