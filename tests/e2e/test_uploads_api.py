"""Uploads over HTTP on a real PostgreSQL and file system, written as attacks (SPEC §5): other users' ids,
revoked grants, hostile names and content, cross-site posts, oversized bodies, deleted records."""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from PIL import Image

from tests.e2e.org_world import shared_world


@pytest.fixture(scope="module")
def world(embedded_postgres, tmp_path_factory):
    yield from shared_world(embedded_postgres, tmp_path_factory, "uploads_api")


def png(width: int = 4, height: int = 3) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


def bomb_png(width: int = 65_536, height: int = 65_536) -> bytes:
    """A valid 1x1 PNG whose header (with a correct CRC) claims width x height pixels."""
    data = bytearray(png(1, 1))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[ihdr + 17:ihdr + 21] = zlib.crc32(bytes(data[ihdr:ihdr + 17])).to_bytes(4, "big")
    return bytes(data)


def upload(world, client, content: bytes, name: str = "notes.txt", org: int | None = None) -> dict:
    response = client.post(f"/api/organisations/{org or world.org}/uploads", params={"filename": name},
                           content=content, headers={"content-type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    return response.json()


def store_root(world) -> Path:
    return world.container.upload_store().root


def stored_files(world) -> set[str]:
    return {e.storage_name for e in world.container.upload_store().entries()}


def row_count(world) -> int:
    with world.container.engine().connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM uploads")).scalar_one()


ORG = {"kind": "organisation"}


def test_raw_upload_round_trips_with_safe_download_headers(world):
    body = b"<html><script>alert(1)</script></html>"
    meta = upload(world, world.ada, body, name="../../etc/passwd\u202egnp.html")
    assert meta["name"] == "_.._etc_passwdgnp.html"  # separators replaced, bidi override dropped
    assert meta["size_bytes"] == len(body) and meta["sha256"] == hashlib.sha256(body).hexdigest()
    assert meta["content_type"] == "application/octet-stream" and meta["image"] is False
    response = world.ada.get(meta["download_url"])
    assert response.status_code == 200 and response.content == body
    headers = response.headers
    assert headers["content-type"] == "application/octet-stream"  # never text/html, whatever the name says
    assert headers["content-disposition"].startswith("attachment; filename=\"")
    star = headers["content-disposition"].split("filename*=UTF-8''", 1)[1]
    assert unquote(star) == meta["name"]
    assert headers["x-content-type-options"] == "nosniff"
    assert "private" in headers["cache-control"]
    assert headers["content-length"] == str(len(body))
    # The file sits under the root with a generated name: nothing of the client's name reached the disk.
    files = [p for p in store_root(world).rglob("*") if p.is_file()]
    assert all("passwd" not in str(p) for p in files)


def test_multipart_browser_upload_is_streamed_and_named_from_the_form(world):
    response = world.bob.post(f"{world.base}/uploads", files={"file": ("Quartalsbericht Ü.pdf", b"%PDF-1.7 x" * 1000)})
    assert response.status_code == 201, response.text
    meta = response.json()
    assert meta["name"] == "Quartalsbericht Ü.pdf" and meta["size_bytes"] == 10_000
    disposition = world.bob.get(meta["download_url"]).headers["content-disposition"]
    assert 'filename="Quartalsbericht U.pdf"' in disposition
    assert "filename*=UTF-8''Quartalsbericht%20%C3%9C.pdf" in disposition
    missing = world.bob.post(f"{world.base}/uploads", files={"other": ("a.txt", b"x")})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "file"


def test_only_verified_raster_images_are_inline_and_svg_never_is(world):
    image = upload(world, world.ada, png(), name="logo.txt")  # the name lies; the content decides
    assert image["content_type"] == "image/png" and image["image"] is True
    response = world.ada.get(image["download_url"])
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].startswith("inline;")
    svg = upload(world, world.ada, b'<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>', "a.svg")
    response = world.ada.get(svg["download_url"])
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment;")
    truncated = upload(world, world.ada, png()[:-20], "broken.png")
    assert truncated["image"] is False and truncated["content_type"] == "application/octet-stream"


def test_head_and_single_range_requests(world):
    body = bytes(range(256)) * 1000
    meta = upload(world, world.ada, body, "blob.bin")
    url = meta["download_url"]
    head = world.ada.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(body)) and head.content == b""
    assert head.headers["accept-ranges"] == "bytes"
    part = world.ada.get(url, headers={"range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == body[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(body)}"
    tail = world.ada.get(url, headers={"range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == body[-10:]
    open_ended = world.ada.get(url, headers={"range": f"bytes={len(body) - 5}-"})
    assert open_ended.content == body[-5:]
    beyond = world.ada.get(url, headers={"range": f"bytes={len(body)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(body)}"
    assert world.ada.head(url, headers={"range": "bytes=0-9"}).headers["content-length"] == "10"
    several = world.ada.get(url, headers={"range": "bytes=0-1,5-6"})  # ignored: the whole file
    assert several.status_code == 200 and len(several.content) == len(body)


def test_other_users_upload_ids_are_not_found_on_every_path(world):
    mine = upload(world, world.ada, b"ada's draft", "draft.txt")
    url = f"/api/uploads/{mine['id']}"
    record = world.create(world.bob, type="doc", scope=ORG, title="Bob's doc")
    for response in (world.bob.get(url), world.bob.get(f"{url}/content"), world.bob.head(f"{url}/content"),
                     world.bob.delete(url),
                     world.bob.put(f"{world.base}/records/{record['display_id']}/attachments/{mine['id']}"),
                     world.bob.put("/api/me/avatar", json={"upload_id": mine["id"]})):
        assert response.status_code == 404, (response.request.method, response.request.url, response.text)
    assert world.bob.get("/api/uploads/999999999/content").status_code == 404
    assert world.ada.get(f"{url}/content").content == b"ada's draft"


def test_attachment_follows_the_record_and_a_revoked_grant_hides_it_on_the_next_download(world):
    ada, bob, cy, base = world.ada, world.bob, world.cy, world.base
    spec = world.create(ada, type="doc", scope=world.scope("APP"), title="APP spec")
    meta = upload(world, ada, b"the APP design", "design.txt")
    attach_url = f"{base}/records/{spec['display_id']}/attachments/{meta['id']}"
    assert ada.put(attach_url).status_code == 200
    content = f"/api/uploads/{meta['id']}/content"
    listing = f"{base}/records/{spec['display_id']}/attachments"
    assert bob.get(content).content == b"the APP design"  # viewer of APP reads the record, so the file
    assert [a["id"] for a in bob.get(listing).json()] == [meta["id"]]
    assert cy.get(content).status_code == 404 and cy.get(listing).status_code == 404
    assert bob.delete(attach_url).status_code == 403  # a viewer cannot detach
    # Revoke Bob's grant: the very next download and listing no longer show it.
    grants = ada.get(f"{base}/projects/{world.projects['APP']}/grants").json()
    grant = next(g for g in grants if g.get("user_id") == world.bob_id)
    assert ada.delete(f"{base}/projects/{world.projects['APP']}/grants/{grant['id']}").status_code in (200, 204)
    try:
        assert bob.get(content).status_code == 404
        assert bob.head(content).status_code == 404
        assert bob.get(f"/api/uploads/{meta['id']}").status_code == 404
        assert bob.get(listing).status_code == 404
    finally:
        ada.post(f"{base}/projects/{world.projects['APP']}/grants", json={"user_id": world.bob_id, "role": "viewer"})
    log = ada.get(f"{base}/audit", params={"action": ["upload.attached"]}).json()
    assert any(e["target"] == f"upload:{meta['id']}" for e in log["items"])


def test_attaching_needs_write_access_to_the_record_and_the_upload(world):
    ada, bob, cy, base = world.ada, world.bob, world.cy, world.base
    app_doc = world.create(ada, type="doc", scope=world.scope("APP"), title="APP notes")
    bobs = upload(world, bob, b"bob's file", "b.txt")
    assert bob.put(f"{base}/records/{app_doc['display_id']}/attachments/{bobs['id']}").status_code == 403  # viewer
    sec_doc = world.create(ada, type="doc", scope=world.scope("SEC"), title="SEC notes")
    assert bob.put(f"{base}/records/{sec_doc['display_id']}/attachments/{bobs['id']}").status_code == 404
    ops_doc = world.create(cy, type="doc", scope=world.scope("OPS"), title="OPS notes")
    url = f"{base}/records/{ops_doc['display_id']}/attachments/{bobs['id']}"
    assert bob.put(url).status_code == 200  # open project: every member writes
    assert cy.get(f"/api/uploads/{bobs['id']}/content").content == b"bob's file"
    # Moving it into a record Bob cannot write is refused; Ada (owner) can detach it.
    assert bob.put(f"{base}/records/{app_doc['display_id']}/attachments/{bobs['id']}").status_code == 403
    assert cy.delete(f"/api/uploads/{bobs['id']}").status_code == 403  # neither uploader nor admin
    assert ada.delete(url).status_code == 200
    assert cy.get(f"/api/uploads/{bobs['id']}/content").status_code == 404  # Bob's alone again
    actions = {e["action"] for e in ada.get(f"{base}/audit").json()["items"]}
    assert {"upload.attached", "upload.detached"} <= actions


def test_server_admin_reads_any_attachment_even_on_a_private_record(world):
    private = world.create(world.bob, type="doc", scope={"kind": "user", "id": world.bob_id}, title="mine")
    meta = upload(world, world.bob, b"private notes", "p.txt")
    assert world.bob.put(f"{world.base}/records/{private['display_id']}/attachments/{meta['id']}").status_code == 200
    assert world.cy.get(f"/api/uploads/{meta['id']}/content").status_code == 404
    assert world.ada.get(f"{world.base}/records/{private['display_id']}").status_code == 404  # the record: no
    assert world.ada.get(f"/api/uploads/{meta['id']}/content").content == b"private notes"  # Ada is server admin


def test_deleting_a_record_takes_its_attachments_with_it(world):
    page = world.create(world.ada, type="doc", scope=ORG, title="Doomed")
    meta = upload(world, world.ada, b"doomed attachment", "d.txt")
    assert world.ada.put(f"{world.base}/records/{page['display_id']}/attachments/{meta['id']}").status_code == 200
    assert world.ada.delete(f"{world.base}/docs/{page['display_id']}").status_code in (200, 204)
    for client in (world.ada, world.bob):
        assert client.get(f"/api/uploads/{meta['id']}/content").status_code == 404
        assert client.get(f"/api/uploads/{meta['id']}").status_code == 404


def test_deleting_an_upload_removes_row_and_file_and_is_audited(world):
    meta = upload(world, world.bob, b"to delete", "x.txt")
    with world.container.engine().connect() as conn:
        storage = conn.execute(sa.text("SELECT storage_name FROM uploads WHERE id = :id"),
                               {"id": meta["id"]}).scalar_one()
    assert storage in stored_files(world)
    assert world.bob.delete(f"/api/uploads/{meta['id']}").status_code == 204
    assert storage not in stored_files(world)
    assert world.bob.get(f"/api/uploads/{meta['id']}").status_code == 404
    log = world.ada.get(f"{world.base}/audit", params={"action": ["upload.deleted"]}).json()["items"]
    assert any(e["target"] == f"upload:{meta['id']}" for e in log)


def test_cross_site_upload_is_refused_and_nothing_is_stored(world):
    before_files, before_rows = stored_files(world), row_count(world)
    response = world.ada.post(f"{world.base}/uploads", params={"filename": "x"}, content=b"forged",
                              headers={"origin": "https://evil.example"})
    assert response.status_code == 403
    response = world.ada.post(f"{world.base}/uploads", files={"file": ("x", b"forged")},
                              headers={"sec-fetch-site": "cross-site"})
    assert response.status_code == 403
    assert stored_files(world) == before_files and row_count(world) == before_rows


def test_avatars_and_logos_must_be_images_and_follow_their_audiences(world, embedded_postgres):
    ada, bob, cy, base = world.ada, world.bob, world.cy, world.base
    text = upload(world, bob, b"GIF89a but not really", "me.gif")
    refused = bob.put("/api/me/avatar", json={"upload_id": text["id"]})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "upload_id"
    bomb = upload(world, bob, bomb_png(), "bomb.png")  # a decompression bomb: refused before decoding
    assert bob.put("/api/me/avatar", json={"upload_id": bomb["id"]}).status_code == 422
    face = upload(world, bob, png(), "face.png")
    assert bob.put("/api/me/avatar", json={"upload_id": face["id"]}).status_code == 200
    avatar = cy.get(f"/api/users/{world.bob_id}/avatar")  # Cy shares Acme with Bob
    assert avatar.status_code == 200 and avatar.headers["content-type"] == "image/png"
    # Organisation logo: owners/admins only; members of the organisation read it.
    logo = upload(world, bob, png(), "logo.png")
    assert bob.put(f"{base}/logo", json={"upload_id": logo["id"]}).status_code == 403
    ada_logo = upload(world, ada, png(8, 8), "acme.png")
    assert ada.put(f"{base}/logo", json={"upload_id": ada_logo["id"]}).status_code == 200
    assert cy.get(f"{base}/logo").status_code == 200
    # Project logo: a viewer cannot set it; whoever cannot see the project cannot read it.
    app = world.projects["APP"]
    assert bob.put(f"{base}/projects/{app}/logo", json={"upload_id": logo["id"]}).status_code == 403
    app_logo = upload(world, ada, png(5, 5), "app.png")
    assert ada.put(f"{base}/projects/{app}/logo", json={"upload_id": app_logo["id"]}).status_code == 200
    assert bob.get(f"{base}/projects/{app}/logo").status_code == 200
    assert cy.get(f"{base}/projects/{app}/logo").status_code == 404
    assert cy.get(f"/api/uploads/{app_logo['id']}/content").status_code == 404
    # Replacing an avatar turns the old one back into Bob's plain file, not readable by Cy any more.
    face2 = upload(world, bob, png(6, 6), "face2.png")
    assert bob.put("/api/me/avatar", json={"upload_id": face2["id"]}).status_code == 200
    assert cy.get(f"/api/uploads/{face['id']}").status_code == 404
    assert bob.get(f"/api/uploads/{face['id']}").json()["purpose"] == "file"
    assert bob.delete("/api/me/avatar").status_code == 204
    assert cy.get(f"/api/users/{world.bob_id}/avatar").status_code == 404


def test_avatar_is_hidden_from_users_sharing_no_organisation(world):
    face = upload(world, world.cy, png(), "cy.png")
    assert world.cy.put("/api/me/avatar", json={"upload_id": face["id"]}).status_code == 200
    # Dee signs up through an invite to a second organisation Ada creates, then Ada leaves Dee alone there.
    other = world.ada.post("/api/organisations", json={"name": "Elsewhere"})
    assert other.status_code == 201, other.text
    other_id = other.json()["id"]
    token = world.ada.post(f"/api/organisations/{other_id}/invites", json={}).json()["token"]
    dee = world.client()
    assert dee.post("/api/auth/register", json={"invite_token": token, "email": "dee@example.com",
                                                "display_name": "Dee", "password": "another good password"}
                    ).status_code in (200, 201)
    hidden = dee.get(f"/api/users/{world.cy_id}/avatar")
    assert hidden.status_code == 404
    assert dee.get(f"/api/users/{world.ada_id}/avatar").json() == hidden.json()  # none set: the same answer
    assert dee.get(f"/api/uploads/{face['id']}/content").status_code == 404
    assert world.bob.get(f"/api/users/{world.cy_id}/avatar").status_code == 200


def test_size_limit_plus_one_byte_is_413_and_nothing_is_kept(make_container, app_client):
    container = make_container("uploads:\n  upload_max_bytes: 1000\n")
    client = app_client(container)
    first = {"email": "ada@example.com", "display_name": "Ada", "password": "correct horse battery",
             "organisation_name": "Acme"}
    org = client.post("/api/auth/register-first", json=first).json()["active_organisation_id"]
    url = f"/api/organisations/{org}/uploads"
    store = container.upload_store()

    def rows() -> int:
        with container.engine().connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM uploads")).scalar_one()

    def everything_on_disk() -> list[Path]:
        return [p for p in store.root.rglob("*") if p.is_file()] if store.root.exists() else []

    assert client.post(url, params={"filename": "ok"}, content=b"x" * 1000).status_code == 201
    assert (rows(), len(everything_on_disk())) == (1, 1)

    def chunked(n):  # no Content-Length: the limit must hold while streaming
        for _ in range(n):
            yield b"y" * 100

    for attempt in (
        lambda: client.post(url, params={"filename": "big"}, content=b"x" * 1001),
        lambda: client.post(url, params={"filename": "big"}, content=chunked(11)),
        lambda: client.post(url, files={"file": ("big", b"x" * 1001)}),
    ):
        response = attempt()
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"
        assert (rows(), len(everything_on_disk())) == (1, 1), "a refused upload left something behind"
    assert client.post(url, files={"file": ("fits", b"x" * 1000)}).status_code == 201


def test_uploading_into_an_organisation_you_are_not_in_is_not_found_and_stores_nothing(world):
    before_files, before_rows = stored_files(world), row_count(world)
    outsider_org = world.ada.post("/api/organisations", json={"name": "Outside"}).json()["id"]
    response = world.bob.post(f"/api/organisations/{outsider_org}/uploads", params={"filename": "x"}, content=b"x")
    assert response.status_code == 404
    assert world.client().post(f"{world.base}/uploads", content=b"x").status_code == 401  # not signed in
    assert stored_files(world) == before_files and row_count(world) == before_rows


def test_every_upload_route_is_described_in_openapi(world):
    paths = world.ada.get("/api/openapi.json").json()["paths"]
    ours = {p: ops for p, ops in paths.items() if any(w in p.split("/") for w in ("uploads", "avatar", "logo", "attachments"))}
    assert len(ours) >= 8
    for path, operations in ours.items():
        for method, operation in operations.items():
            assert operation.get("description"), f"{method.upper()} {path} has no description"


def asgi_upload(world, messages: list, on_receive=None) -> tuple[int, bytes]:
    """Drive the app at the ASGI level, so the test controls exactly how the body arrives."""
    import anyio

    app = world.container.app()
    cookie = "; ".join(f"{k}={v}" for k, v in world.ada.cookies.items())
    sent = []

    async def receive():
        if on_receive:
            on_receive()
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": f"{world.base}/uploads", "raw_path": f"{world.base}/uploads".encode(),
             "query_string": b"filename=cut.bin", "root_path": "", "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 5555), "headers": [(b"host", b"127.0.0.1:8000"), (b"cookie", cookie.encode())]}
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_client_that_disconnects_mid_upload_leaves_nothing(world):
    before_files, before_rows = stored_files(world), row_count(world)
    status, _ = asgi_upload(world, [{"type": "http.request", "body": b"x" * 1000, "more_body": True},
                                    {"type": "http.disconnect"}])
    assert 400 <= status < 500
    assert stored_files(world) == before_files and row_count(world) == before_rows


def test_no_database_connection_is_held_while_the_body_streams(world):
    """A slow client must not pin a pooled connection: 15 of them would otherwise stall everyone."""
    pool = world.container.engine().pool
    checked_out = []
    body = [{"type": "http.request", "body": b"y" * 100, "more_body": True} for _ in range(5)]
    status, response = asgi_upload(world, [*body, {"type": "http.request", "body": b"", "more_body": False}],
                                   on_receive=lambda: checked_out.append(pool.checkedout()))
    assert status == 201, response
    assert checked_out and max(checked_out) == 0, checked_out
