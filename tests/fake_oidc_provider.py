"""A small OpenID Connect provider of our own on loopback, for what a real one will not do on purpose: ID tokens
with the wrong issuer or audience, expired, unsigned (``alg: none``), signed with a key it does not publish,
with a wrong or missing nonce; and a JWKS it rotates. Discovery, JWKS and the token endpoint are real HTTP;
the authorization step is the test's: it reads state and nonce from TOW's redirect and scripts the code.

``provider.issue(code, **claims)`` scripts what the token endpoint answers for ``code`` (once: a code used
twice gets ``invalid_grant``); ``header=`` and ``key=`` change the JWS header and signing key.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from joserfc import jws
from joserfc.jwk import KeySet, RSAKey

from tests.local_http_server import LocalHttpServer

CLIENT_ID = "tow"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Script:
    claims: dict[str, Any]
    header: dict[str, Any] = field(default_factory=dict)
    key: RSAKey | None = None
    unsigned: bool = False
    token: str | None = None  # answered as is


class FakeOidcProvider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig", "alg": "RS256"})
        self.published: list[RSAKey] = [self.key]
        self.scripts: dict[str, Script] = {}
        self.used_codes: set[str] = set()
        self.token_requests: list[dict[str, list[str]]] = []
        self.jwks_fetches = 0
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: object) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/.well-known/openid-configuration":
                    self._send(200, provider.discovery())
                elif self.path == "/jwks":
                    provider.jwks_fetches += 1
                    self._send(200, KeySet(provider.published).as_dict())
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                provider.token_requests.append(form)
                code = form.get("code", [""])[0]
                with provider._lock:
                    script = provider.scripts.get(code)
                    replayed = code in provider.used_codes
                    provider.used_codes.add(code)
                if script is None or replayed:
                    self._send(400, {"error": "invalid_grant"})
                    return
                self._send(200, {"access_token": "at", "token_type": "Bearer", "id_token": provider.sign(script)})

        self._server = LocalHttpServer(Handler)
        self.origin = self._server.origin
        self.issuer = self.origin

    def start(self) -> FakeOidcProvider:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "authorization_endpoint": f"{self.origin}/authorize",
                "token_endpoint": f"{self.origin}/token", "jwks_uri": f"{self.origin}/jwks",
                "end_session_endpoint": f"{self.origin}/logout", "id_token_signing_alg_values_supported": ["RS256"]}

    def claims(self, browser_nonce: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "subject-1", "iat": now, "exp": now + 300,
                  "nonce": browser_nonce, "email": "sam@example.com", "email_verified": True, "name": "Sam"}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def issue(self, code: str, claims: dict[str, Any], *, header: dict[str, Any] | None = None,
              key: RSAKey | None = None, unsigned: bool = False, token: str | None = None) -> None:
        self.scripts[code] = Script(claims, header or {}, key, unsigned, token)

    def sign(self, script: Script) -> str:
        if script.token is not None:
            return script.token
        payload = json.dumps(script.claims).encode()
        if script.unsigned:
            return f"{_b64(json.dumps({'alg': 'none', **script.header}).encode())}.{_b64(payload)}."
        key = script.key or self.key
        header = {"alg": "RS256", "kid": key.kid, **script.header}  # a header value None: left out
        return jws.serialize_compact({k: v for k, v in header.items() if v is not None}, payload, key)

    def rotate(self) -> RSAKey:
        """A new signing key, published in place of the old one (the old one is gone)."""
        self.key = RSAKey.generate_key(2048, parameters={"kid": f"key-{len(self.published) + 1}", "use": "sig",
                                                         "alg": "RS256"})
        self.published = [self.key]
        return self.key
