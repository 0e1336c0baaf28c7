"""Configuration: ``tow.yaml`` (non-secret) overlaid by the environment and ``.env`` (SPEC §8).

Read once, at startup, into frozen msgspec structs. Precedence, highest first: the process
environment, ``.env``, ``tow.yaml``, the defaults below. Every YAML key can be overridden by an
environment variable named after it in upper case (``ai.embedding_dim`` → ``EMBEDDING_DIM``); the
generic keys ``auth.mode``, ``uploads.backend`` and every key of ``auth.oidc`` and ``uploads.s3`` take their
section as a prefix (``AUTH_MODE``, ``UPLOADS_BACKEND``, ``OIDC_ISSUER_URL``, ``S3_BUCKET``). Secrets come
only from the environment.

A bad value stops startup with one line naming the key path and the reason (``ConfigError``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec
from dotenv import dotenv_values
from msgspec import Meta
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

# The value `.env.example` ships with; starting with it would sign cookies with a public secret.
APP_SECRET_PLACEHOLDER = "CHANGE_ME_TO_A_LONG_RANDOM_VALUE"  # noqa: S105 (the public placeholder we refuse)
APP_SECRET_MIN_LENGTH = 32
GENERATE_SECRET_HINT = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"  # noqa: S105

MiB = 1024 * 1024
# ID token signature algorithms TOW can check (RFC 7518); HS* use OIDC_CLIENT_SECRET as the key.
OIDC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                             "EdDSA", "HS256", "HS384", "HS512"})


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class RuntimeSettings(_Section):
    app_name: str = "TOW"
    # Where people reach TOW (invite and export links, the same-origin check of forms). Left unset, it is the
    # address TOW serves on (bind_host, bind_port, or `tow serve --host/--port`); set it behind a proxy.
    public_app_url: str = "http://127.0.0.1:8000"
    bind_host: str = "127.0.0.1"
    bind_port: Annotated[int, Meta(ge=1, le=65535)] = 8000
    cors_allowed_origins: tuple[str, ...] = ()
    trusted_proxy_cidrs: tuple[str, ...] = ()
    max_request_body_bytes: Annotated[int, Meta(ge=1024, le=1024 * MiB)] = 2 * MiB
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # On SIGTERM/SIGINT, requests in flight get this long to finish; then they are cancelled and it exits.
    shutdown_grace_seconds: Annotated[float, Meta(gt=0, le=600)] = 10.0


class AiSettings(_Section):
    openai_base_url: str = "https://api.openai.com/v1"
    openai_reasoning_model: str = "gpt-5.1"
    openai_reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] = "medium"
    openai_fast_model: str = "gpt-5-mini"
    openai_embedding_model: str = "text-embedding-3-small"
    # pgvector's HNSW index takes at most 2,000 dimensions for `vector` (4,000 for `halfvec`).
    embedding_dim: Annotated[int, Meta(ge=8, le=4000)] = 1536
    max_tool_rounds: Annotated[int, Meta(ge=1, le=50)] = 8
    request_timeout_seconds: Annotated[float, Meta(gt=0, le=600)] = 60.0
    approved_providers: tuple[str, ...] = ("openai", "exa")
    exa_base_url: str = "https://api.exa.ai"
    # Conversations whose last turn is older than this are deleted by the worker's housekeeping; 0 keeps them.
    chat_retention_days: Annotated[int, Meta(ge=0, le=36_500)] = 90
    # Saving a doc queues a memory extraction run at most once per this many seconds per doc (0: every save
    # that finds no run of that doc still queued).
    extraction_debounce_seconds: Annotated[int, Meta(ge=0, le=86_400)] = 60
    # Saving a doc, and a chat answer in a conversation with memory_extraction on, queue a memory extraction
    # run by themselves; false: only on demand ("Extract memory", POST .../records/{id}/extract).
    auto_extraction: bool = True
    # Finished agent runs (their status, timings, usage, error) older than this are deleted; 0 keeps them.
    agent_run_retention_days: Annotated[int, Meta(ge=0, le=36_500)] = 30


class SecuritySettings(_Section):
    session_cookie_name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_\-]{1,64}$")] = "tow_session"
    session_cookie_secure: bool = False
    session_max_age_seconds: Annotated[int, Meta(ge=300, le=366 * 24 * 3600)] = 30 * 24 * 3600


class OidcOrganisationRule(_Section):
    """One line of ``auth.oidc.organisations``: people from the provider (only those in ``when_group``, if
    set) are members of the organisation named ``organisation`` with ``role`` (README "Single sign-on")."""

    organisation: Annotated[str, Meta(min_length=1, max_length=200)]
    role: Literal["member", "admin", "owner"] = "member"
    when_group: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class OidcSettings(_Section):
    issuer_url: str = ""
    client_id: str = ""
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    email_claim: str = "email"
    name_claim: str = "name"
    groups_claim: str = "groups"
    require_email_verified: bool = True
    # An existing account (a password one, say) is linked to a provider identity with the same email only when
    # this is true AND the provider says the email is verified; otherwise that sign-in is refused.
    link_existing_by_email: bool = False
    # SPEC §3, opt-in: after local logout, also end the provider's session (RP-initiated logout) when it has an
    # end_session_endpoint
    provider_logout_enabled: bool = False
    allowed_algorithms: tuple[str, ...] = ("RS256", "ES256")
    request_timeout_seconds: Annotated[float, Meta(gt=0, le=120)] = 10.0
    # The first OIDC login on a fresh server becomes owner of this organisation (created then); empty: the
    # first rule's organisation, else runtime.app_name.
    first_organisation_name: str = ""
    organisations: tuple[OidcOrganisationRule, ...] = ()


class AuthSettings(_Section):
    mode: Literal["builtin", "oidc"] = "builtin"
    oidc: OidcSettings = msgspec.field(default_factory=OidcSettings)
    # The longest expiry a personal access token may be given (tow_core.access_tokens).
    token_max_days: Annotated[int, Meta(ge=1, le=3660)] = 365


class McpSettings(_Section):
    """The MCP server at /api/mcp (tow_http/mcp): tool calls in flight at once, overall and per token;
    beyond them a request is answered 429 at once rather than queued. With ``oidc_access_tokens`` (needs
    ``auth.mode: oidc``) it also takes the single sign-on provider's access tokens (JWTs) for ``oidc_audience``
    (empty: ``auth.oidc.client_id``), as the account linked to their subject; read-only unless their scopes
    hold ``oidc_write_scope`` (README "MCP")."""

    max_concurrent_requests: Annotated[int, Meta(ge=1, le=1000)] = 16
    max_concurrent_per_token: Annotated[int, Meta(ge=1, le=100)] = 4
    oidc_access_tokens: bool = False
    oidc_audience: Annotated[str, Meta(max_length=500)] = ""
    oidc_write_scope: Annotated[str, Meta(pattern=r"^[!#-\[\]-~]{1,200}$")] = "tow:write"  # RFC 6749 §3.3


class LiveSettings(_Section):
    """Live updates (GET /api/organisations/{org}/live, server-sent events; tow_core.live): streams one server
    process holds open at once (beyond them: 429), and how often an idle stream sends a keep-alive comment (so
    proxies keep it open) and checks that its user may still follow it."""

    max_clients: Annotated[int, Meta(ge=1, le=100_000)] = 500
    heartbeat_seconds: Annotated[float, Meta(ge=0.5, le=300)] = 15.0


class DatabaseSettings(_Section):
    embedded_data_dir: str = "./var/pgdata"
    pool_size: Annotated[int, Meta(ge=1, le=200)] = 5
    max_overflow: Annotated[int, Meta(ge=0, le=200)] = 10
    # How long a request waits for a pooled connection before 503 database_busy (with Retry-After).
    pool_timeout_seconds: Annotated[float, Meta(gt=0, le=30)] = 0.5
    connect_timeout_seconds: Annotated[int, Meta(ge=1, le=300)] = 10
    statement_timeout_ms: Annotated[int, Meta(ge=0, le=3_600_000)] = 30_000


class JobsSettings(_Section):
    ai_queue_max_concurrency: Annotated[int, Meta(ge=1, le=64)] = 2
    poll_interval_seconds: Annotated[float, Meta(gt=0, le=60)] = 2.0
    lease_seconds: Annotated[int, Meta(ge=10, le=86_400)] = 300
    max_attempts: Annotated[int, Meta(ge=1, le=100)] = 5


class S3Settings(_Section):
    """The bucket of ``uploads.backend: s3``; its credentials come from the environment only (TOW_S3_*)."""

    endpoint_url: str = ""  # an S3-compatible server (SeaweedFS, MinIO, Ceph ...); empty: AWS S3 in `region`
    bucket: str = ""
    region: Annotated[str, Meta(pattern=r"^[a-z0-9-]{1,64}$")] = "us-east-1"
    # Empty, or path segments each ending in "/": objects are <key_prefix><storage name>.
    key_prefix: Annotated[str, Meta(pattern=r"^((?!\.{1,2}/)[A-Za-z0-9._-]+/)*$")] = "uploads/"


class UploadsSettings(_Section):
    backend: Literal["filesystem", "s3"] = "filesystem"
    upload_storage_path: str = "./var/uploads"  # backend filesystem
    upload_max_bytes: Annotated[int, Meta(ge=1, le=10 * 1024 * MiB)] = 25 * MiB
    s3: S3Settings = msgspec.field(default_factory=S3Settings)


class ExportsSettings(_Section):
    export_storage_path: str = "./var/exports"
    retention_hours: Annotated[int, Meta(ge=1, le=24 * 365)] = 48


class SmtpSettings(_Section):
    host: str = "localhost"
    port: Annotated[int, Meta(ge=1, le=65535)] = 587
    # starttls: upgrade a plain connection (port 587, refused if the server cannot); tls: TLS from the first byte
    # (port 465, RFC 8314); none: clear text, only to a relay on this machine or a trusted network
    security: Literal["starttls", "tls", "none"] = "starttls"
    timeout_seconds: Annotated[float, Meta(gt=0, le=300)] = 30.0
    # A PEM bundle of certificate authorities to trust instead of the system's (a private CA); empty: the system's
    ca_file: str = ""


class EmailSettings(_Section):
    # console: log one line per message (recipient, subject; never the body) and send nothing; file: write .eml
    # files to file_directory; smtp: send through email.smtp (TOW_SMTP_USERNAME / TOW_SMTP_PASSWORD if it needs them)
    transport: Literal["console", "file", "smtp"] = "console"
    from_address: str = "TOW <tow@localhost>"
    reply_to: str = ""
    # Attempts per message (retried with exponential backoff from 30 s); then it is dead-lettered for server admins
    max_attempts: Annotated[int, Meta(ge=1, le=100)] = 8
    file_directory: str = "./var/mail"
    smtp: SmtpSettings = msgspec.field(default_factory=SmtpSettings)


class Settings(_Section):
    runtime: RuntimeSettings = msgspec.field(default_factory=RuntimeSettings)
    ai: AiSettings = msgspec.field(default_factory=AiSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    jobs: JobsSettings = msgspec.field(default_factory=JobsSettings)
    uploads: UploadsSettings = msgspec.field(default_factory=UploadsSettings)
    exports: ExportsSettings = msgspec.field(default_factory=ExportsSettings)
    mcp: McpSettings = msgspec.field(default_factory=McpSettings)
    email: EmailSettings = msgspec.field(default_factory=EmailSettings)
    live: LiveSettings = msgspec.field(default_factory=LiveSettings)


SECRET_VARIABLES = (
    "APP_SECRET",
    "APP_SECRET_PREVIOUS",
    "DATABASE_URL",
    "OPENAI_API_KEY",
    "EXA_API_KEY",
    "OIDC_CLIENT_SECRET",
    "TOW_SMTP_USERNAME",
    "TOW_SMTP_PASSWORD",
    "TOW_S3_ACCESS_KEY_ID",
    "TOW_S3_SECRET_ACCESS_KEY",
)
_PREFIXED_LEAVES = {("auth", "mode"), ("uploads", "backend"), ("mcp", "max_concurrent_requests"),
                    ("mcp", "max_concurrent_per_token"), ("mcp", "oidc_access_tokens"), ("mcp", "oidc_audience"),
                    ("mcp", "oidc_write_scope"), ("live", "max_clients"), ("live", "heartbeat_seconds")}


@dataclass(frozen=True, slots=True)
class Secrets:
    """Values that never live in YAML (SPEC §3, §8)."""

    app_secret: str
    app_secret_previous: str | None = None
    database_url: str | None = None
    openai_api_key: str | None = None
    exa_api_key: str | None = None
    oidc_client_secret: str | None = None
    tow_smtp_username: str | None = None
    tow_smtp_password: str | None = None
    # uploads.backend s3: TOW's own names, so an operator's AWS_* profile is never picked up by accident
    tow_s3_access_key_id: str | None = None
    tow_s3_secret_access_key: str | None = None


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    settings: Settings
    secrets: Secrets
    sources: Mapping[str, str] = field(default_factory=dict)
    """Key path (``ai.embedding_dim``) or secret variable → where its value came from."""
    base_dir: Path = Path(".")

    def serving_at(self, host: str | None, port: int | None) -> LoadedConfig:
        """This configuration served on ``host``/``port`` (`tow serve --host/--port`; None keeps the configured
        one). An unset ``runtime.public_app_url`` follows the address served, so links point where TOW is."""
        runtime = self.settings.runtime
        runtime = msgspec.structs.replace(runtime, bind_host=host or runtime.bind_host,
                                          bind_port=port or runtime.bind_port)
        sources = dict(self.sources)
        if host:
            sources["runtime.bind_host"] = "tow serve --host"
        if port:
            sources["runtime.bind_port"] = "tow serve --port"
        if sources.get("runtime.public_app_url", "default") in ("default", DERIVED_PUBLIC_URL):
            runtime = msgspec.structs.replace(runtime, public_app_url=served_url(runtime.bind_host, runtime.bind_port))
            sources["runtime.public_app_url"] = DERIVED_PUBLIC_URL
        return replace(self, settings=msgspec.structs.replace(self.settings, runtime=runtime), sources=sources)

    def resolve_path(self, configured: str) -> Path:
        """Relative paths in the configuration are relative to the directory of tow.yaml."""
        path = Path(configured).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()


DERIVED_PUBLIC_URL = "unset: the address served"


def served_url(host: str, port: int) -> str:
    """The URL of a server bound to ``host``:``port``; one bound to every interface is reached on loopback."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming the wildcard, not binding to it
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class ConfigError(Exception):
    """A configuration problem; ``str()`` is the one line shown to the operator."""


def env_name(path: tuple[str, ...]) -> str:
    """The environment variable that overrides the YAML key at ``path``."""
    if path[:2] == ("auth", "oidc"):
        return "OIDC_" + path[-1].upper()
    if path[0] == "email":  # EMAIL_TRANSPORT, EMAIL_SMTP_HOST: HOST and PORT alone mean other things
        return "_".join(path).upper()
    if path[:2] == ("uploads", "s3"):
        return "S3_" + path[-1].upper()
    if path in _PREFIXED_LEAVES:
        return "_".join(path).upper()
    return path[-1].upper()


def _leaf_paths(struct_type: type[msgspec.Struct], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for info in msgspec.structs.fields(struct_type):
        path = (*prefix, info.name)
        if isinstance(info.type, type) and issubclass(info.type, msgspec.Struct):
            yield from _leaf_paths(info.type, path)
        else:
            yield path


def _is_sequence_field(path: tuple[str, ...]) -> bool:
    node: Any = Settings
    for name in path:
        info = next(f for f in msgspec.structs.fields(node) if f.name == name)
        node = info.type
    return getattr(node, "__origin__", None) is tuple


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file ({exc.strerror})") from exc
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (runtime, ai, ...)")
    return data


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for name in path[:-1]:
        child = node.get(name)
        if not isinstance(child, dict):
            child = {}
            node[name] = child
        node = child
    node[path[-1]] = value


def _has_path(tree: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = tree
    for name in path:
        if not isinstance(node, Mapping) or name not in node:
            return False
        node = node[name]
    return True


_MSGSPEC_LOCATION = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def _explain_validation_error(exc: msgspec.ValidationError, sources: Mapping[str, str]) -> str:
    match = _MSGSPEC_LOCATION.match(str(exc))
    reason = match.group("reason") if match else str(exc)
    path = (match.group("path") or "").lstrip(".") if match else ""
    unknown = re.match(r"Object contains unknown field `(?P<key>[^`]+)`", reason)
    if unknown:
        key = f"{path}.{unknown.group('key')}" if path else unknown.group("key")
        return f"{key}: unknown key (check the spelling; see config/local.yaml for every key)"
    where = sources.get(path, "tow.yaml")
    reason = reason[0].lower() + reason[1:] if reason else reason
    return f"{path or '(top level)'}: {reason} (from {where})"


def _validated_secrets(environment: Mapping[str, str], *, require_app_secret: bool) -> Secrets:
    app_secret = environment.get("APP_SECRET", "")
    if require_app_secret:
        if not app_secret:
            raise ConfigError(f"APP_SECRET is not set: {GENERATE_SECRET_HINT} and put it in .env")
        if app_secret == APP_SECRET_PLACEHOLDER:
            raise ConfigError(
                f"APP_SECRET is still the placeholder from .env.example: {GENERATE_SECRET_HINT}"
            )
        if len(app_secret) < APP_SECRET_MIN_LENGTH:
            raise ConfigError(
                f"APP_SECRET is {len(app_secret)} characters, at least {APP_SECRET_MIN_LENGTH} are required: "
                f"{GENERATE_SECRET_HINT}"
            )

    def optional(name: str) -> str | None:
        return environment.get(name) or None

    return Secrets(
        app_secret=app_secret,
        app_secret_previous=optional("APP_SECRET_PREVIOUS"),
        database_url=optional("DATABASE_URL"),
        openai_api_key=optional("OPENAI_API_KEY"),
        exa_api_key=optional("EXA_API_KEY"),
        oidc_client_secret=optional("OIDC_CLIENT_SECRET"),
        tow_smtp_username=optional("TOW_SMTP_USERNAME"),
        tow_smtp_password=optional("TOW_SMTP_PASSWORD"),
        tow_s3_access_key_id=optional("TOW_S3_ACCESS_KEY_ID"),
        tow_s3_secret_access_key=optional("TOW_S3_SECRET_ACCESS_KEY"),
    )


def _check_url(path: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{path}: expected an http:// or https:// URL, got {value!r}")


def _check_consistency(settings: Settings, secrets: Secrets) -> None:
    _check_url("runtime.public_app_url", settings.runtime.public_app_url)
    _check_url("ai.openai_base_url", settings.ai.openai_base_url)
    _check_url("ai.exa_base_url", settings.ai.exa_base_url)
    for origin in settings.runtime.cors_allowed_origins:
        _check_url("runtime.cors_allowed_origins", origin)
    for cidr in settings.runtime.trusted_proxy_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ConfigError(f"runtime.trusted_proxy_cidrs: {cidr!r} is not a network ({exc})") from exc
    if urlsplit(settings.runtime.public_app_url).scheme == "https" and not settings.security.session_cookie_secure:
        raise ConfigError(
            "security.session_cookie_secure: must be true when runtime.public_app_url is https "
            "(otherwise browsers would send the session cookie over plain HTTP)"
        )
    if settings.auth.mode == "oidc":
        oidc = settings.auth.oidc
        if not oidc.issuer_url or not oidc.client_id:
            raise ConfigError("auth.oidc: issuer_url and client_id are required when auth.mode is oidc")
        _check_url("auth.oidc.issuer_url", oidc.issuer_url)
        if not secrets.oidc_client_secret:
            raise ConfigError("OIDC_CLIENT_SECRET is not set but auth.mode is oidc")
        if "none" in (alg.lower() for alg in oidc.allowed_algorithms):
            raise ConfigError("auth.oidc.allowed_algorithms: 'none' is never allowed (unsigned ID tokens)")
        unknown = sorted(set(oidc.allowed_algorithms) - OIDC_ALGORITHMS)
        if unknown or not oidc.allowed_algorithms:
            raise ConfigError(f"auth.oidc.allowed_algorithms: expected some of {', '.join(sorted(OIDC_ALGORITHMS))}, "
                              f"got {', '.join(unknown) or 'none'}")
        if "openid" not in oidc.scopes:
            raise ConfigError("auth.oidc.scopes: must include openid")
    if settings.mcp.oidc_access_tokens and settings.auth.mode != "oidc":
        raise ConfigError("mcp.oidc_access_tokens: needs auth.mode oidc (the access tokens are auth.oidc's "
                          "provider's)")
    _check_email(settings.email, secrets)
    if settings.uploads.backend == "s3":
        _check_s3(settings.uploads.s3, secrets)
    if secrets.database_url and urlsplit(secrets.database_url).scheme not in (
        "postgres",
        "postgresql",
        "postgresql+psycopg",
    ):
        raise ConfigError("DATABASE_URL: expected a postgresql:// URL")


def _check_email(email: EmailSettings, secrets: Secrets) -> None:
    for key, value in (("email.from_address", email.from_address), ("email.reply_to", email.reply_to)):
        if (value or key == "email.from_address") and "@" not in parseaddr(value)[1]:
            raise ConfigError(f"{key}: expected an email address (name@example.com or \"Name <name@example.com>\"), "
                              f"got {value!r}")
        if any(c in value for c in "\r\n"):
            raise ConfigError(f"{key}: must be one line")
    if email.transport == "smtp" and not email.smtp.host:
        raise ConfigError("email.smtp.host: required when email.transport is smtp")
    if bool(secrets.tow_smtp_username) != bool(secrets.tow_smtp_password):
        raise ConfigError("TOW_SMTP_USERNAME and TOW_SMTP_PASSWORD: set both or neither")


def _check_s3(s3: S3Settings, secrets: Secrets) -> None:
    if not s3.bucket:
        raise ConfigError("uploads.s3.bucket: required when uploads.backend is s3 (or set S3_BUCKET)")
    if s3.endpoint_url:
        _check_url("uploads.s3.endpoint_url", s3.endpoint_url)
    for name in ("TOW_S3_ACCESS_KEY_ID", "TOW_S3_SECRET_ACCESS_KEY"):
        if not getattr(secrets, name.lower()):
            raise ConfigError(f"{name} is not set but uploads.backend is s3 (the bucket's credentials come from "
                              "the environment or .env only)")


def load_config(
    yaml_path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
    require_app_secret: bool = True,
) -> LoadedConfig:
    """Read tow.yaml, .env and the environment once; raise ConfigError with one line on any problem.

    ``yaml_path`` defaults to ``$TOW_CONFIG`` or ``./tow.yaml`` (a missing default file means
    "all defaults"); ``dotenv_path`` defaults to ``.env`` beside it.
    """
    process_env = dict(os.environ if environ is None else environ)
    explicit_yaml = yaml_path or (Path(process_env["TOW_CONFIG"]) if process_env.get("TOW_CONFIG") else None)
    yaml_file = explicit_yaml or Path("tow.yaml")
    base_dir = yaml_file.resolve().parent
    tree = _read_yaml(yaml_file) if (explicit_yaml or yaml_file.exists()) else {}

    dotenv_file = dotenv_path or base_dir / ".env"
    from_dotenv = {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None} if dotenv_file.exists() else {}
    environment = {**from_dotenv, **process_env}

    sources: dict[str, str] = {}
    for path in _leaf_paths(Settings):
        key = ".".join(path)
        name = env_name(path)
        if name in environment:
            raw = environment[name]
            value: Any = tuple(p.strip() for p in raw.split(",") if p.strip()) if _is_sequence_field(path) else raw
            _set_path(tree, path, value)
            sources[key] = f"environment {name}" if name in process_env else f".env {name}"
        elif _has_path(tree, path):
            sources[key] = str(yaml_file.name)
        else:
            sources[key] = "default"
    for name in SECRET_VARIABLES:
        if environment.get(name):
            sources[name] = "environment" if name in process_env else ".env"
        else:
            sources[name] = "unset"

    try:
        settings = msgspec.convert(tree, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain_validation_error(exc, sources)) from exc
    secrets = _validated_secrets(environment, require_app_secret=require_app_secret)
    loaded = LoadedConfig(settings=settings, secrets=secrets, sources=sources, base_dir=base_dir)
    if sources["runtime.public_app_url"] == "default":
        loaded = loaded.serving_at(None, None)
    _check_consistency(loaded.settings, secrets)
    return loaded


def mask_secret(name: str, value: str | None) -> str:
    """Show that a secret is set without revealing it; DATABASE_URL keeps everything but its password."""
    if not value:
        return "(unset)"
    if name == "DATABASE_URL":
        parts = urlsplit(value)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":********@")
            return urlunsplit(parts._replace(netloc=netloc))
        return value
    return f"******** ({len(value)} characters)"


def _shown(item: object) -> str:
    """A list item as the settings page shows it: a rule (a struct) as its JSON."""
    return msgspec.json.encode(item).decode() if isinstance(item, msgspec.Struct) else str(item)


def effective_config_lines(config: LoadedConfig) -> list[str]:
    """``key = value  (source)`` for every setting and secret, secrets masked: `tow config check`."""
    lines = []
    for path in _leaf_paths(Settings):
        node: Any = config.settings
        for name in path:
            node = getattr(node, name)
        shown = ",".join(_shown(item) for item in node) if isinstance(node, tuple) else node
        key = ".".join(path)
        lines.append(f"{key} = {shown}  ({config.sources.get(key, 'default')})")
    for name in SECRET_VARIABLES:
        value = getattr(config.secrets, name.lower())
        lines.append(f"{name} = {mask_secret(name, value)}  ({config.sources.get(name, 'unset')})")
    return lines


def effective_config_entries(config: LoadedConfig) -> tuple[tuple[str, str, str], ...]:
    """``(key, shown value, source)`` for every setting and secret, secrets masked: the server settings page."""
    entries = []
    for line in effective_config_lines(config):
        key, _, rest = line.partition(" = ")
        value, _, source = rest.rpartition("  (")
        entries.append((key, value, source.removesuffix(")")))
    return tuple(entries)
