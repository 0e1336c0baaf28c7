"""`tow export` on the embedded PostgreSQL: the organisation export and a member's export written to a file
by the operator are the files the API's export job writes for the same data (but ``exported_at``); the
file appears only when complete, never replaces one unless --force, and is audited; mistakes get one
line and exit 1. Progress shows on a terminal only."""

from __future__ import annotations

import json
import os
import re

import pytest
import sqlalchemy as sa

from tests.e2e.org_world import World
from tests.e2e.test_export_import import build_rich_organisation, container_on
from tow_http import cli
from tow_http.composition import build_job_worker

_EXPORTED_AT = re.compile(rb'\n"exported_at": "[^"]+",\n')


@pytest.fixture(scope="module")
def source(embedded_postgres, tmp_path_factory):
    container, config_path = container_on(embedded_postgres, tmp_path_factory.mktemp("cli-export"),
                                          f"cli_export_{os.getpid()}")
    world = World(container)
    build_rich_organisation(world)
    yield world, config_path
    container.engine().dispose()


def api_export(world: World, client, body: dict) -> bytes:
    export = client.post(f"{world.base}/exports", json=body).json()
    c = world.container
    build_job_worker(c.engine(), c.config(), c.export_files(), c.upload_store()).drain()
    response = client.get(f"/api/exports/{export['id']}/download")
    assert response.status_code == 200, response.text
    return response.content


def without_export_time(content: bytes) -> bytes:
    assert len(_EXPORTED_AT.findall(content)) == 1
    return _EXPORTED_AT.sub(b"\n", content)


def tow(config_path, *arguments: str) -> int:
    return cli.main(["--config", str(config_path), "export", *arguments])


def written_entries(world: World) -> list[dict]:
    return world.ada.get(f"{world.base}/audit?action=export.written").json()["items"]


def test_the_organisation_export_is_the_file_the_export_job_writes(source, tmp_path, capsys):
    world, config_path = source
    output = tmp_path / "acme.json"
    assert tow(config_path, "--organisation", "acme", "--output", str(output), "--attachment-contents") == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # not a terminal: no progress lines
    assert f"wrote the organisation export of 'Acme' (organisation {world.org}) to {output}" in captured.out
    expected = api_export(world, world.ada, {"kind": "organisation", "include_attachment_contents": True})
    assert without_export_time(output.read_bytes()) == without_export_time(expected)
    document = json.loads(output.read_bytes())
    assert document["kind"] == "organisation" and document["attachments"][0]["content_base64"]
    assert output.stat().st_mode & 0o777 == 0o600
    [entry] = written_entries(world)
    assert (entry["actor_id"], entry["target"]) == (None, f"organisation:{world.org}")
    assert entry["details"]["kind"] == "organisation" and entry["details"]["attachment_contents"] is True


def test_a_member_export_is_what_the_member_gets_from_the_api(source, tmp_path, capsys):
    world, config_path = source
    output = tmp_path / "bob.json"
    assert tow(config_path, "--organisation", str(world.org), "--member", "Bob@Example.com", "-o", str(output)) == 0
    assert "member export of bob@example.com" in capsys.readouterr().out
    expected = api_export(world, world.bob, {"kind": "member"})
    assert without_export_time(output.read_bytes()) == without_export_time(expected)
    titles = {r["title"] for r in json.loads(output.read_bytes())["records"]}
    assert "Ada private" not in titles and "Reviewer notes" in titles  # Ada's private doc; Bob's group's
    assert any(e["target"] == f"user:{world.bob_id}" and e["details"]["kind"] == "member"
               for e in written_entries(world))


def test_an_existing_file_is_replaced_only_with_force(source, tmp_path, capsys):
    world, config_path = source
    output = tmp_path / "taken.json"
    output.write_text("keep me")
    assert tow(config_path, "--organisation", "Acme", "--output", str(output)) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "already exists" in error and "--force" in error
    assert output.read_text() == "keep me"
    assert tow(config_path, "--organisation", "Acme", "--output", str(output), "--force") == 0
    assert json.loads(output.read_text())["kind"] == "organisation"


@pytest.mark.parametrize(("arguments", "message"), [
    (("--organisation", "Globex"), "no organisation has the id or name 'Globex'"),
    (("--organisation", "999999"), "no organisation has the id or name '999999'"),
    (("--organisation", "Acme", "--member", "nobody@example.com"), "no account has the email"),
    (("--organisation", "Acme", "--member", "outsider@example.com"), "is not a member of organisation 'Acme'"),
])
def test_an_unknown_organisation_or_member_is_one_line_and_no_file(source, tmp_path, capsys, arguments, message):
    world, config_path = source
    world.sql("INSERT INTO users (email, display_name, password_hash, is_active) "
              "VALUES ('outsider@example.com', 'Out', NULL, true) ON CONFLICT DO NOTHING")
    output = tmp_path / "x.json"
    before = len(written_entries(world))
    assert tow(config_path, *arguments, "--output", str(output)) == 1
    error = capsys.readouterr().err
    assert error.startswith("tow: error: ") and message in error and error.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
    assert len(written_entries(world)) == before


def test_an_unwritable_path_is_refused_before_anything_is_read(source, tmp_path, capsys):
    _, config_path = source
    (tmp_path / "a-file").write_text("")
    assert tow(config_path, "--organisation", "Acme", "--output", str(tmp_path / "a-file" / "x.json")) == 1
    assert "is not a directory" in capsys.readouterr().err
    assert tow(config_path, "--organisation", "Acme", "--output", str(tmp_path)) == 1
    assert "is a directory" in capsys.readouterr().err


def test_a_failure_while_writing_leaves_no_file_and_no_audit_entry(source, tmp_path, capsys, monkeypatch):
    world, config_path = source
    from tow_adapters.postgres import export_source

    original = export_source.PgExportSource.sections

    def failing(self, subject):
        for name, items in original(self, subject):
            if name == "records":
                raise sa.exc.OperationalError("SELECT", {}, Exception("connection lost"))
            yield name, items

    monkeypatch.setattr(export_source.PgExportSource, "sections", failing)
    before = len(written_entries(world))
    output = tmp_path / "broken.json"
    assert tow(config_path, "--organisation", "Acme", "--output", str(output)) == 1
    assert "connection lost" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary file
    assert len(written_entries(world)) == before


def test_on_a_terminal_the_export_shows_progress_on_stderr(source, tmp_path, capsys, monkeypatch):
    _, config_path = source
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's switch: treat stderr as a terminal
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    output = tmp_path / "shown.json"
    assert tow(config_path, "--organisation", "Acme", "--output", str(output)) == 0
    captured = capsys.readouterr()
    items = int(re.search(r": (\d+) items", captured.out).group(1))
    assert "writing shown.json" in captured.err and f"{items:,}/{items:,} items" in captured.err
    assert "ETA" in captured.err
    assert "writing" not in captured.out  # progress on stderr, the result on stdout


def test_tow_import_of_a_written_export_shows_progress_only_on_a_terminal(source, tmp_path, capsys, monkeypatch):
    world, config_path = source
    output = tmp_path / "acme.json"
    assert tow(config_path, "--organisation", "Acme", "--output", str(output)) == 0
    for copy, terminal in (("Acme quiet", False), ("Acme shown", True)):
        document = json.loads(output.read_bytes())
        document["organisation"]["name"] = copy  # a new organisation beside Acme; people matched by email
        path = tmp_path / f"{copy}.json"
        path.write_text(json.dumps(document))
        if terminal:
            monkeypatch.setenv("TTY_COMPATIBLE", "1")
            monkeypatch.setenv("TTY_INTERACTIVE", "1")
        capsys.readouterr()
        assert cli.main(["--config", str(config_path), "import", str(path)]) == 0
        captured = capsys.readouterr()
        assert f"imported organisation {copy!r}" in captured.out
        if terminal:
            records = len(document["records"])
            steps = 2 * records + len(document["memory_diffs"]) + len(document["attachments"])
            assert "checking the file" in captured.err and f"{steps:,}/{steps:,} items" in captured.err
        else:
            assert captured.err == ""
