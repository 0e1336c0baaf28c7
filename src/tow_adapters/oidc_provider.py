"""The OpenID Connect provider over HTTP (``tow_core.oidc.IdentityProvider``): discovery, the authorization
code flow with PKCE S256, and the ID token's checks. The one module that talks to the provider.

Every request has a timeout; a provider that cannot be reached or answers 5xx is ``DependencyUnavailable``
(a page that says so), an answer that fails a check is ``SignInRefused`` saying which check. The ID token
is refused unless: it is a JWS signed with an algorithm in ``allowed_algorithms`` (``none`` never; HS*
only when listed, keyed with the client secret), by a key of the provider's JWKS (the one its ``kid``
names; without a ``kid``, any published key), refetching the JWKS once when the ``kid`` is unknown or no
cached key verifies the signature (the provider rotated its keys); its ``iss`` is the discovered issuer, its
``aud`` names this client (and ``azp`` does, when there are several audiences), it has not expired (60 s of
clock skew allowed) and its ``nonce`` is the one this browser's login started
with. The discovery document must name the configured issuer (OpenID Connect Discovery §4.3).

Access tokens the provider issues as JWTs (the MCP server, ``verify_access_token``) are checked the same way,
with the same keys, except: HS* never (the client secret is ours, it signs nothing we receive), the audience is
``mcp.oidc_audience``, no nonce, and an unknown ``kid`` refetches the JWKS at most every ``KEY_REFETCH_SECONDS``
(anyone may send one). A refused access token is ``InvalidToken`` saying which check failed.

What is sent: the authorization code, the PKCE verifier and the client credentials, to the provider's
token endpoint; no company data. So this adapter writes no egress ledger rows (issue 13 is about data).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from tow_core.errors import DependencyUnavailable, InvalidToken, TowError
from tow_core.oidc import ProviderAccess, ProviderLogin, SignInRefused

CLOCK_SKEW_SECONDS = 60
# An access token naming an unknown key refetches the JWKS at most this often: anyone can send one to the MCP
# server, and each must not make TOW call the provider (an ID token needs a sign-in code first).
KEY_REFETCH_SECONDS = 10
RETRY_AFTER_SECONDS = 30
MAX_RESPONSE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class OidcOptions:
    issuer_url: str
    client_id: str
    client_secret: str
    redirect_uri: str  # <public_app_url>/auth/oidc/callback
    post_logout_redirect_uri: str
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    allowed_algorithms: tuple[str, ...] = ("RS256", "ES256")
    timeout_seconds: float = 10.0
    email_claim: str = "email"
    name_claim: str = "name"
    groups_claim: str = "groups"


def _refused(message: str) -> SignInRefused:
    return SignInRefused(f"single sign-on refused: {message}")


def _b64_json(segment: str, error: TowError | None = None) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise error or _refused("the ID token is not a JSON Web Token") from exc


class OidcProvider:
    """One configured provider; discovery and keys are fetched on first use and kept (keys refetched on an
    unknown ``kid``), so a provider that is down at startup does not stop TOW from starting."""

    def __init__(self, options: OidcOptions, *, clock: Callable[[], float] = time.time) -> None:
        self._options = options
        self._clock = clock
        self._http = requests.Session()
        self._lock = threading.Lock()
        self._metadata: Mapping[str, Any] | None = None
        self._keys: KeySet | None = None
        self._keys_fetched_at = float("-inf")

    # --- the port -------------------------------------------------------------------------------------

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        endpoint = self._endpoint("authorization_endpoint")
        query = urlencode({
            "response_type": "code", "client_id": self._options.client_id,
            "redirect_uri": self._options.redirect_uri, "scope": " ".join(self._options.scopes),
            "state": state, "nonce": nonce, "code_challenge": create_s256_code_challenge(code_verifier),
            "code_challenge_method": "S256",
        })
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def redeem(self, *, code: str, code_verifier: str, nonce: str) -> ProviderLogin:
        tokens = self._token_request(code, code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise _refused("the provider's token answer has no ID token (is the openid scope allowed?)")
        claims = self._verified_claims(id_token, nonce)
        return self._login(claims, id_token)

    def end_session_url(self, *, id_token_hint: str) -> str | None:
        endpoint = self._discovered().get("end_session_endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            return None
        query = urlencode({"id_token_hint": id_token_hint, "client_id": self._options.client_id,
                           "post_logout_redirect_uri": self._options.post_logout_redirect_uri})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def verify_access_token(self, token: str, *, audience: str) -> ProviderAccess:
        """An access token the provider issued as a JWT (RFC 9068), for the MCP server: signed by a key of its
        JWKS with an asymmetric algorithm of ``allowed_algorithms`` (never ``none`` or HS*: the client secret is
        this server's, not a signing key for tokens it receives), from the discovered issuer, naming
        ``audience`` in ``aud``, unexpired (60 s of skew), with a subject. Its ``azp`` is not checked: the MCP
        client that asked for it is usually another client of the provider."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("the access token is neither a personal access token (tow_pat_...) nor a JSON Web "
                               "Token from the single sign-on provider")
        header = _b64_json(parts[0], InvalidToken("the access token is not a JSON Web Token"))
        alg = header.get("alg") if isinstance(header, dict) else None
        if not isinstance(alg, str) or alg.lower() == "none" or not parts[2]:
            raise InvalidToken("the access token is unsigned (alg none)")
        if alg.startswith("HS") or alg not in self._options.allowed_algorithms:
            raise InvalidToken(f"the access token is signed with {alg[:20]}, which TOW does not accept for access "
                               "tokens (auth.oidc.allowed_algorithms, never HS*)")
        claims = self._verified_claims_object(token, header, alg, refuse=InvalidToken, what="the access token",
                                              throttled=True)
        return self._access(claims, audience)

    def _access(self, claims: Mapping[str, Any], audience: str) -> ProviderAccess:
        issuer = self._discovered()["issuer"]
        if claims.get("iss") != issuer:
            raise InvalidToken(f"the access token was issued by {str(claims.get('iss'))[:200]!r}, not by {issuer!r}")
        aud = claims.get("aud")
        if audience not in ([aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []):
            raise InvalidToken(f"the access token is not for this server: its audience is not {audience!r} "
                               "(mcp.oidc_audience)")
        now, expires = self._clock(), claims.get("exp")
        if not isinstance(expires, int | float) or isinstance(expires, bool) or now > expires + CLOCK_SKEW_SECONDS:
            raise InvalidToken("the access token has expired (or has no expiry): get a new one from your provider")
        not_before = claims.get("nbf")
        if isinstance(not_before, int | float) and not isinstance(not_before, bool) and \
                not_before > now + CLOCK_SKEW_SECONDS:
            raise InvalidToken("the access token is not valid yet: check the clocks")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("the access token names no subject")
        scope = claims.get("scope", claims.get("scp"))  # RFC 9068: a string; Okta and Entra ID: a list (scp)
        scopes = scope.split() if isinstance(scope, str) else [
            s for s in scope if isinstance(s, str)] if isinstance(scope, list) else []
        return ProviderAccess(issuer, subject, frozenset(scopes),
                              datetime.fromtimestamp(expires + CLOCK_SKEW_SECONDS, UTC))

    # --- HTTP -----------------------------------------------------------------------------------------

    def _unavailable(self, what: str) -> DependencyUnavailable:
        return DependencyUnavailable(
            f"the single sign-on provider ({self._options.issuer_url}) {what}: try again in a minute, or ask "
            "your administrator", retry_after_seconds=RETRY_AFTER_SECONDS)

    def _json(self, response: requests.Response, what: str) -> Mapping[str, Any]:
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise self._unavailable(f"sent an oversized {what}")
        try:
            body = response.json()
        except ValueError as exc:
            raise self._unavailable(f"sent a {what} that is not JSON") from exc
        if not isinstance(body, dict):
            raise self._unavailable(f"sent a {what} that is not a JSON object")
        return body

    def _get(self, url: str, what: str) -> Mapping[str, Any]:
        try:
            response = self._http.get(url, timeout=self._options.timeout_seconds, allow_redirects=False,
                                      headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise self._unavailable(f"cannot be reached for its {what} ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise self._unavailable(f"answered {response.status_code} for its {what}")
        return self._json(response, what)

    def _discovered(self) -> Mapping[str, Any]:
        with self._lock:
            if self._metadata is not None:
                return self._metadata
        issuer = self._options.issuer_url.rstrip("/")
        metadata = self._get(f"{issuer}/.well-known/openid-configuration", "discovery document")
        if not isinstance(metadata.get("issuer"), str) or metadata["issuer"].rstrip("/") != issuer:
            raise self._unavailable(f"names issuer {str(metadata.get('issuer'))[:200]!r} in its discovery document, "
                                    "not auth.oidc.issuer_url")
        for name in ("authorization_endpoint", "token_endpoint"):
            if not isinstance(metadata.get(name), str):
                raise self._unavailable(f"has no {name} in its discovery document")
        with self._lock:
            self._metadata = metadata
        return metadata

    def _endpoint(self, name: str) -> str:
        return self._discovered()[name]

    def _token_request(self, code: str, code_verifier: str) -> Mapping[str, Any]:
        metadata = self._discovered()
        options = self._options
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": options.redirect_uri,
                "code_verifier": code_verifier}
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        auth = None
        if "client_secret_basic" in methods or "client_secret_post" not in methods:
            auth = (quote(options.client_id, safe=""), quote(options.client_secret, safe=""))  # RFC 6749 §2.3.1
        else:
            data.update(client_id=options.client_id, client_secret=options.client_secret)
        try:
            response = self._http.post(metadata["token_endpoint"], data=data, auth=auth, allow_redirects=False,
                                       timeout=options.timeout_seconds, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise self._unavailable(f"cannot be reached for the sign-in code ({type(exc).__name__})") from exc
        if response.status_code >= 500:
            raise self._unavailable(f"answered {response.status_code} for the sign-in code")
        if response.status_code != 200:
            error = ""
            with contextlib.suppress(ValueError, AttributeError):
                error = str(response.json().get("error", ""))[:100]
            raise _refused(f"the provider refused the sign-in code ({error or response.status_code}): it was used "
                           "already, expired, or was not issued to this server; start again")
        return self._json(response, "token answer")

    def _key_set(self, *, refresh: bool) -> KeySet:
        with self._lock:
            if self._keys is not None and not refresh:
                return self._keys
        uri = self._discovered().get("jwks_uri")
        if not isinstance(uri, str):
            raise self._unavailable("has no jwks_uri in its discovery document")
        document = self._get(uri, "signing keys (JWKS)")
        try:
            keys = KeySet.import_key_set({"keys": [key for key in document.get("keys", [])
                                                   if isinstance(key, dict) and key.get("use", "sig") == "sig"]})
        except (JoseError, ValueError, TypeError) as exc:
            raise self._unavailable("publishes signing keys (JWKS) TOW cannot read") from exc
        with self._lock:
            self._keys, self._keys_fetched_at = keys, self._clock()
        return keys

    # --- the ID token ---------------------------------------------------------------------------------

    def _verified_claims_object(self, token: str, header: Mapping[str, Any], alg: str, *,
                                refuse: Callable[[str], TowError] = _refused, what: str = "the ID token",
                                throttled: bool = False) -> dict[str, Any]:
        """The verified payload (``_verified_payload``) as the JSON object of claims it must be."""
        payload = self._verified_payload(token, header, alg, refuse=refuse, what=what, throttled=throttled)
        try:
            claims = json.loads(payload)
        except ValueError as exc:
            raise refuse(f"{what}'s claims are not JSON") from exc
        if not isinstance(claims, dict):
            raise refuse(f"{what}'s claims are not a JSON object")
        return claims

    def _verified_payload(self, token: str, header: Mapping[str, Any], alg: str, *,
                          refuse: Callable[[str], TowError] = _refused, what: str = "the ID token",
                          throttled: bool = False) -> bytes:
        """The JWS payload, verified with the client secret (HS*, when allowed) or a key of the provider's JWKS:
        the one its ``kid`` names, or (no ``kid``) each published key. A key it cannot find, or a signature no
        cached key verifies, refetches the JWKS once (the provider rotated its keys) before refusing; when
        ``throttled``, only if the keys were fetched more than ``KEY_REFETCH_SECONDS`` ago."""
        if alg.startswith("HS"):
            payload = self._verify_with(token, [OctKey.import_key(self._options.client_secret)], alg)
            if payload is None:
                raise refuse(f"{what}'s signature does not verify")
            return payload
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise refuse(f"{what} names its key oddly (kid is not a string)")
        candidates: list[Any] = []
        for refresh in (False, True):
            if refresh and throttled and self._clock() - self._keys_fetched_at < KEY_REFETCH_SECONDS:
                break
            keys = self._key_set(refresh=refresh).keys
            candidates = [key for key in keys if kid is None or key.kid == kid]
            payload = self._verify_with(token, candidates, alg) if candidates else None
            if payload is not None:
                return payload
        if not candidates:
            raise refuse(f"{what} is signed with a key the provider does not publish (kid {str(kid)[:64]!r})")
        raise refuse(f"{what}'s signature does not verify")

    @staticmethod
    def _verify_with(id_token: str, keys: list[Any], alg: str) -> bytes | None:
        for key in keys:
            try:
                return jws.deserialize_compact(id_token, key, algorithms=[alg]).payload
            except (JoseError, ValueError, TypeError):
                continue
        return None

    def _verified_claims(self, id_token: str, nonce: str) -> Mapping[str, Any]:
        parts = id_token.split(".")
        if len(parts) != 3:
            raise _refused("the ID token is not a signed JSON Web Token")
        header = _b64_json(parts[0])
        alg = header.get("alg") if isinstance(header, dict) else None
        if not isinstance(alg, str) or alg.lower() == "none" or not parts[2]:
            raise _refused("the ID token is unsigned (alg none)")
        if alg not in self._options.allowed_algorithms:
            raise _refused(f"the ID token is signed with {alg[:20]}, which auth.oidc.allowed_algorithms does not "
                           "allow")
        claims = self._verified_claims_object(id_token, header, alg)
        self._check_claims(claims, nonce)
        return claims

    def _check_claims(self, claims: Mapping[str, Any], nonce: str) -> None:
        issuer = self._discovered()["issuer"]
        client_id = self._options.client_id
        if claims.get("iss") != issuer:
            raise _refused(f"the ID token was issued by {str(claims.get('iss'))[:200]!r}, not by {issuer!r}")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if client_id not in audiences:
            raise _refused("the ID token was issued for another application (its audience is not this server)")
        if len(audiences) > 1 and claims.get("azp", client_id) != client_id:
            raise _refused("the ID token was issued for another application (azp)")
        now = self._clock()
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or isinstance(expires, bool) or now > expires + CLOCK_SKEW_SECONDS:
            raise _refused("the ID token has expired (or has no expiry): start again")
        issued = claims.get("iat")
        if isinstance(issued, int | float) and not isinstance(issued, bool) and issued > now + CLOCK_SKEW_SECONDS:
            raise _refused("the ID token was issued in the future: check the clocks")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise _refused("the ID token's nonce does not match the sign-in this browser started (a replayed or "
                           "foreign token)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise _refused("the ID token names no subject")

    def _login(self, claims: Mapping[str, Any], id_token: str) -> ProviderLogin:
        options = self._options
        email = claims.get(options.email_claim)
        name = claims.get(options.name_claim)
        verified = claims.get("email_verified")
        groups = claims.get(options.groups_claim)
        if isinstance(groups, str):
            groups = [groups]
        return ProviderLogin(
            issuer=claims["iss"], subject=claims["sub"], email=email if isinstance(email, str) else None,
            email_verified=verified is True or verified == "true", name=name if isinstance(name, str) else None,
            groups=tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else None,
            id_token=id_token)
