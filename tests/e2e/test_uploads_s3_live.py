"""A live `tow serve` with ``uploads.backend: s3`` on a real SeaweedFS (SPEC §5, §11): a file attached over HTTP is
an object in the bucket, downloads whole and by Range, an over-limit upload leaves nothing behind, and deleting
its record removes the object once `tow worker` has run the deletion outbox; `tow uploads verify` agrees. In
process: images verify through the bucket, and an unreachable bucket answers 503."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

from PIL import Image

from tests.e2e.org_world import FIRST, World
from tests.e2e.test_backup_restore import signed_in
from tests.live_server import live_server, sign_up_owner
from tests.seaweedfs import ACCESS_KEY_ID, SECRET_ACCESS_KEY, objects

MiB = 1024 * 1024


def upload(server, cookie: str, org: int, body: bytes) -> tuple[int, dict]:
    conn = server.connection()
    try:
        conn.request("POST", f"/api/organisations/{org}/uploads?filename=plan.bin", body=body, headers={
            "Cookie": cookie, "Origin": f"http://127.0.0.1:{server.port}",
            "Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def download(server, cookie: str, upload_id: int, byte_range: str | None = None) -> tuple[int, dict, bytes]:
    conn = server.connection()
    try:
        headers = {"Cookie": cookie, **({"Range": byte_range} if byte_range else {})}
        conn.request("GET", f"/api/uploads/{upload_id}/content", headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def tow(tmp_path, database_url: str, environ: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, **environ}
    return subprocess.run([sys.executable, "-m", "tow_http.cli", "--config", str(tmp_path / "tow.yaml"), *argv],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_file_lives_in_the_bucket_downloads_by_range_and_goes_with_its_record(
        tmp_path, fresh_database_url, seaweedfs, s3_bucket, s3_prefix):
    prefix = f"{s3_prefix}uploads/"
    yaml = (f"uploads:\n  backend: s3\n  upload_max_bytes: {12 * MiB}\n  s3:\n"
            f"    endpoint_url: {seaweedfs.endpoint_url}\n    bucket: {s3_bucket}\n    key_prefix: {prefix}\n")
    environ = {"TOW_S3_ACCESS_KEY_ID": ACCESS_KEY_ID, "TOW_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}
    client = seaweedfs.client()
    body = os.urandom(9 * MiB + 123)  # two 8 MiB parts: a multipart upload
    with live_server(tmp_path, yaml, database_url=fresh_database_url, environ=environ) as server:
        cookie, org = sign_up_owner(server, docs=0)
        status, _, record = server.request("POST", f"/api/organisations/{org}/records", cookie=cookie, body={
            "type": "doc", "scope": {"kind": "organisation"}, "title": "Plan", "body": "see the file"})
        assert status == 201
        display_id = json.loads(record)["display_id"]

        status, stored = upload(server, cookie, org, body)
        assert status == 201, stored
        assert (stored["size_bytes"], stored["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
        [name] = objects(client, s3_bucket, prefix)  # one complete object, no incomplete upload
        assert client.get_object(Bucket=s3_bucket, Key=prefix + name)["ContentLength"] == len(body)
        status, _, _ = server.request(
            "PUT", f"/api/organisations/{org}/records/{display_id}/attachments/{stored['id']}", cookie=cookie)
        assert status == 200

        status, headers, whole = download(server, cookie, stored["id"])
        assert status == 200 and hashlib.sha256(whole).hexdigest() == stored["sha256"]
        first, last = 8 * MiB - 100, 8 * MiB + 99  # across the part boundary
        status, headers, part = download(server, cookie, stored["id"], f"bytes={first}-{last}")
        assert status == 206 and part == body[first:last + 1]
        assert headers["content-range"] == f"bytes {first}-{last}/{len(body)}"
        status, _, tail = download(server, cookie, stored["id"], "bytes=-5")
        assert status == 206 and tail == body[-5:]

        status, refused = upload(server, cookie, org, os.urandom(12 * MiB + 1))  # a part sent, then too large
        assert status == 413 and refused["error"]["code"] == "payload_too_large"
        assert objects(client, s3_bucket, prefix) == [name]  # the multipart upload was aborted

        verified = tow(tmp_path, fresh_database_url, environ, "uploads", "verify", "--grace-seconds", "0")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert f"upload store: s3://{s3_bucket}/{prefix}" in verified.stdout
        assert "checked 1 files and 1 rows" in verified.stdout

        status, _, _ = server.request("DELETE", f"/api/organisations/{org}/docs/{display_id}", cookie=cookie)
        assert status == 204
        status, _, _ = download(server, cookie, stored["id"])
        assert status == 404  # the row went with the record; the object waits for the outbox
        assert objects(client, s3_bucket, prefix) == [name]

        worked = tow(tmp_path, fresh_database_url, environ, "worker", "--once")
        assert worked.returncode == 0, worked.stdout + worked.stderr
        assert objects(client, s3_bucket, prefix) == []


def test_tow_serve_refuses_to_start_without_the_buckets_credentials(tmp_path):
    (tmp_path / "tow.yaml").write_text("uploads:\n  backend: s3\n  s3:\n    bucket: tow-files\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TOW_S3_")}
    result = subprocess.run([sys.executable, "-m", "tow_http.cli", "--config", str(tmp_path / "tow.yaml"), "serve"],
                            env={**environ, "APP_SECRET": "s" * 40}, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tow: configuration error: TOW_S3_ACCESS_KEY_ID is not set but uploads.backend is s3 (the bucket's credentials come from the "
        "environment or .env only)"]


def s3_yaml(endpoint_url: str, bucket: str, prefix: str) -> str:
    return f"uploads:\n  backend: s3\n  s3:\n    endpoint_url: {endpoint_url}\n    bucket: {bucket}\n" \
           f"    key_prefix: {prefix}\n"


S3_KEYS = {"TOW_S3_ACCESS_KEY_ID": ACCESS_KEY_ID, "TOW_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}


def test_images_verify_through_the_bucket_and_an_unreachable_bucket_answers_503(make_container, seaweedfs,
                                                                                s3_bucket, s3_prefix):
    """Pillow reads (and seeks in) the object it just wrote; a bucket that cannot be reached is a 503 with
    Retry-After naming the bucket, never a 500 or a vendor stack trace."""
    world = World(make_container(s3_yaml(seaweedfs.endpoint_url, s3_bucket, f"{s3_prefix}uploads/"), **S3_KEYS))
    picture = io.BytesIO()
    Image.new("RGB", (6, 4), (10, 200, 10)).save(picture, format="PNG")
    response = world.ada.post(f"{world.base}/uploads", params={"filename": "face.png"}, content=picture.getvalue(),
                              headers={"content-type": "application/octet-stream"})
    assert response.status_code == 201 and response.json()["image"] is True
    assert world.ada.put("/api/me/avatar", json={"upload_id": response.json()["id"]}).status_code == 200

    # The same deployment, its bucket's endpoint gone (nothing listens on the discard port).
    down = signed_in(make_container(s3_yaml("http://127.0.0.1:9", s3_bucket, f"{s3_prefix}uploads/"), **S3_KEYS),
                     FIRST["email"], FIRST["password"])
    attempts = {
        "upload": lambda: down.post(f"{world.base}/uploads", params={"filename": "a.txt"}, content=b"hello",
                                    headers={"content-type": "application/octet-stream"}),
        "download": lambda: down.get(f"/api/uploads/{response.json()['id']}/content"),
    }
    for what, attempt in attempts.items():
        refused = attempt()
        assert refused.status_code == 503, (what, refused.text)
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["error"]["code"] == "dependency_unavailable"
        assert f"S3 bucket {s3_bucket}" in refused.json()["error"]["message"]
