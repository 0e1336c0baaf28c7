"""`tow serve --port N` with runtime.public_app_url unset: the links TOW hands out and the same-origin check
of forms follow the address actually served, not the default port 8000 (a dead invite link before)."""

from __future__ import annotations

import json

from tests.live_server import live_server, sign_up_owner


def test_links_and_the_origin_check_follow_the_port_given_to_tow_serve(tmp_path):
    with live_server(tmp_path, port_flag=True) as server:
        cookie, org = sign_up_owner(server, docs=0)
        status, _, body = server.request("POST", f"/api/organisations/{org}/invites", body={}, cookie=cookie)
        assert status == 201, body
        assert json.loads(body)["accept_url"].startswith(f"http://127.0.0.1:{server.port}/invite/")

        def post_from(origin: str) -> int:
            conn = server.connection()
            try:
                conn.request("POST", f"/api/organisations/{org}/invites", body=b"{}", headers={
                    "Cookie": cookie, "Origin": origin, "Content-Type": "application/json"})
                return conn.getresponse().status
            finally:
                conn.close()

        assert post_from(f"http://127.0.0.1:{server.port}") == 201  # the page TOW served, on its own port
        assert post_from("http://127.0.0.1:8000") == 403  # the default port is another origin now
        status, _, page = server.request("GET", "/server", cookie=cookie)
        assert status == 200 and f"http://127.0.0.1:{server.port}" in page.decode()
