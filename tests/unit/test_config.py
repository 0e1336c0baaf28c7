"""Configuration: tow.yaml + .env + environment → frozen settings, or one clear line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tow_http.cli import main
from tow_http.config import (
    APP_SECRET_PLACEHOLDER,
    DERIVED_PUBLIC_URL,
    ConfigError,
    effective_config_lines,
    load_config,
)

GOOD_SECRET = "x" * 40
S3_KEYS = {"TOW_S3_ACCESS_KEY_ID": "tow-key", "TOW_S3_SECRET_ACCESS_KEY": "tow-secret"}


def write(tmp_path: Path, yaml_text: str = "", dotenv: str | None = None) -> Path:
    path = tmp_path / "tow.yaml"
    path.write_text(yaml_text)
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    return path


def test_defaults_apply_when_yaml_is_empty(tmp_path):
    config = load_config(write(tmp_path), environ={"APP_SECRET": GOOD_SECRET})
    assert config.settings.runtime.bind_port == 8000
    assert config.settings.security.session_cookie_name == "tow_session"
    assert config.settings.security.session_max_age_seconds == 30 * 24 * 3600
    assert config.settings.uploads.upload_max_bytes == 25 * 1024 * 1024
    assert config.settings.exports.retention_hours == 48
    assert config.sources["runtime.bind_port"] == "default"


def test_environment_beats_dotenv_beats_yaml_and_sources_say_so(tmp_path):
    path = write(
        tmp_path,
        "ai:\n  embedding_dim: 768\n  max_tool_rounds: 4\nruntime:\n  bind_port: 9000\n",
        dotenv=f"APP_SECRET={GOOD_SECRET}\nMAX_TOOL_ROUNDS=6\nBIND_PORT=9001\n",
    )
    config = load_config(path, environ={"BIND_PORT": "9002", "APPROVED_PROVIDERS": "openai, local"})
    assert config.settings.ai.embedding_dim == 768
    assert config.sources["ai.embedding_dim"] == "tow.yaml"
    assert config.settings.ai.max_tool_rounds == 6
    assert config.sources["ai.max_tool_rounds"] == ".env MAX_TOOL_ROUNDS"
    assert config.settings.runtime.bind_port == 9002
    assert config.sources["runtime.bind_port"] == "environment BIND_PORT"
    assert config.settings.ai.approved_providers == ("openai", "local")
    assert config.secrets.app_secret == GOOD_SECRET
    assert config.sources["APP_SECRET"] == ".env"


def test_generic_keys_take_their_section_as_env_prefix(tmp_path):
    config = load_config(
        write(tmp_path),
        environ={
            "APP_SECRET": GOOD_SECRET,
            "AUTH_MODE": "oidc",
            "OIDC_ISSUER_URL": "https://login.example.com",
            "OIDC_CLIENT_ID": "tow",
            "OIDC_CLIENT_SECRET": "s3cret",
        },
    )
    assert config.settings.auth.mode == "oidc"
    assert config.settings.auth.oidc.issuer_url == "https://login.example.com"


def test_relative_paths_resolve_against_the_yaml_directory(tmp_path):
    config = load_config(write(tmp_path), environ={"APP_SECRET": GOOD_SECRET})
    assert config.resolve_path("./var/pgdata") == (tmp_path / "var" / "pgdata").resolve()
    assert config.resolve_path("/srv/data") == Path("/srv/data")


BAD_CONFIGS = [
    pytest.param("runtime:\n  colour: blue\n", {}, "runtime.colour: unknown key", id="unknown-key"),
    pytest.param("nonsense:\n  a: 1\n", {}, "nonsense: unknown key", id="unknown-section"),
    pytest.param("runtime:\n  bind_port: [1]\n", {}, "runtime.bind_port: expected `int`", id="wrong-type"),
    pytest.param(
        "",
        {"BIND_PORT": "eighty"},
        "runtime.bind_port: expected `int`, got `str` (from environment BIND_PORT)",
        id="wrong-type-from-env",
    ),
    pytest.param("ai:\n  embedding_dim: 0\n", {}, "ai.embedding_dim: expected `int` >= 8", id="out-of-range"),
    pytest.param("auth:\n  mode: ldap\n", {}, "auth.mode: invalid enum value 'ldap'", id="bad-enum"),
    pytest.param("runtime:\n  public_app_url: ftp://x\n", {}, "runtime.public_app_url: expected an http", id="bad-url"),
    pytest.param("runtime:\n  trusted_proxy_cidrs: [10.0.0.0/33]\n", {}, "runtime.trusted_proxy_cidrs", id="bad-cidr"),
    pytest.param("runtime: [\n", {}, "is not valid YAML", id="broken-yaml"),
    pytest.param("- a\n- b\n", {}, "the top level must be a mapping", id="yaml-list"),
    pytest.param("", {"APP_SECRET": ""}, "APP_SECRET is not set", id="missing-secret"),
    pytest.param("", {"APP_SECRET": APP_SECRET_PLACEHOLDER}, "APP_SECRET is still the placeholder", id="placeholder"),
    pytest.param("", {"APP_SECRET": "short-secret"}, "APP_SECRET is 12 characters, at least 32", id="short-secret"),
    pytest.param(
        "runtime:\n  public_app_url: https://tow.example.com\nsecurity:\n  session_cookie_secure: false\n",
        {},
        "security.session_cookie_secure: must be true when runtime.public_app_url is https",
        id="insecure-cookie-with-https",
    ),
    pytest.param("auth:\n  mode: oidc\n", {}, "auth.oidc: issuer_url and client_id are required", id="oidc-incomplete"),
    pytest.param(
        "auth:\n  mode: oidc\n  oidc:\n    issuer_url: https://id.example\n    client_id: tow\n"
        "    allowed_algorithms: [none]\n",
        {"OIDC_CLIENT_SECRET": "x"},
        "'none' is never allowed",
        id="oidc-alg-none",
    ),
    pytest.param("mcp:\n  oidc_access_tokens: true\n", {}, "mcp.oidc_access_tokens: needs auth.mode oidc",
                 id="mcp-provider-tokens-without-oidc"),
    pytest.param("mcp:\n  oidc_write_scope: tow write\n", {}, "mcp.oidc_write_scope: expected `str` matching",
                 id="mcp-write-scope-with-a-space"),
    pytest.param("uploads:\n  backend: ftp\n", {}, "uploads.backend: invalid enum value 'ftp'", id="bad-backend"),
    pytest.param("uploads:\n  backend: s3\n", S3_KEYS, "uploads.s3.bucket: required when uploads.backend is s3",
                 id="s3-no-bucket"),
    pytest.param("uploads:\n  backend: s3\n  s3:\n    bucket: tow\n", {"TOW_S3_SECRET_ACCESS_KEY": "x"},
                 "TOW_S3_ACCESS_KEY_ID is not set but uploads.backend is s3", id="s3-no-access-key"),
    pytest.param("", {"UPLOADS_BACKEND": "s3", "S3_BUCKET": "tow", "TOW_S3_ACCESS_KEY_ID": "x"},
                 "TOW_S3_SECRET_ACCESS_KEY is not set but uploads.backend is s3", id="s3-no-secret-key"),
    pytest.param("uploads:\n  backend: s3\n  s3:\n    bucket: tow\n    endpoint_url: seaweedfs:8333\n", S3_KEYS,
                 "uploads.s3.endpoint_url: expected an http:// or https:// URL", id="s3-bad-endpoint"),
    pytest.param("uploads:\n  s3:\n    key_prefix: ../up/\n", {}, "uploads.s3.key_prefix: expected `str` matching",
                 id="s3-bad-prefix"),
]


@pytest.mark.parametrize(("yaml_text", "env", "expected"), BAD_CONFIGS)
def test_bad_configuration_is_one_line_naming_the_problem(tmp_path, yaml_text, env, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, yaml_text), environ={"APP_SECRET": GOOD_SECRET, **env})
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(("yaml_text", "env", "expected"), BAD_CONFIGS)
def test_cli_exits_2_with_one_line_for_bad_configuration(tmp_path, monkeypatch, capsys, yaml_text, env, expected):
    monkeypatch.setenv("APP_SECRET", GOOD_SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["--config", str(write(tmp_path, yaml_text)), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_config_check_prints_every_value_with_its_source_and_masks_secrets(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, "ai:\n  embedding_dim: 1024\n", dotenv="OPENAI_API_KEY=sk-very-secret-key\n")
    monkeypatch.setenv("APP_SECRET", GOOD_SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://tow:hunter2@db:5432/tow")
    assert main(["--config", str(path), "config", "check"]) == 0
    out = capsys.readouterr().out
    assert "ai.embedding_dim = 1024  (tow.yaml)" in out
    assert "runtime.bind_port = 8000  (default)" in out
    assert "postgresql://tow:********@db:5432/tow  (environment)" in out
    assert "OPENAI_API_KEY = ******** (18 characters)  (.env)" in out
    assert "EXA_API_KEY = (unset)" in out
    for secret in (GOOD_SECRET, "hunter2", "sk-very-secret-key"):
        assert secret not in out


def test_every_setting_is_documented_in_the_local_example_and_env_example():
    root = Path(__file__).resolve().parents[2]
    local = load_config(root / "config" / "local.yaml", environ={"APP_SECRET": GOOD_SECRET})
    assert all(source != "default" for key, source in local.sources.items() if "." in key and ".oidc." not in key)
    env_example = (root / ".env.example").read_text()
    lines = effective_config_lines(local)
    from tow_http.config import SECRET_VARIABLES, _leaf_paths, env_name, Settings  # noqa: I001

    for path in _leaf_paths(Settings):
        assert env_name(path) in env_example, f"{env_name(path)} missing from .env.example"
    for name in SECRET_VARIABLES:
        assert f"{name}=" in env_example
    assert len(lines) > 40


@pytest.mark.parametrize("example", ["local.yaml", "production-https.yaml", "oidc.yaml", "several-processes.yaml"])
def test_example_configurations_are_valid(example):
    root = Path(__file__).resolve().parents[2]
    load_config(root / "config" / example, environ={"APP_SECRET": GOOD_SECRET, "OIDC_CLIENT_SECRET": "x",
                                                    "TOW_S3_ACCESS_KEY_ID": "key", "TOW_S3_SECRET_ACCESS_KEY": "secret"})


def test_the_readme_single_sign_on_example_is_a_valid_configuration(tmp_path):
    root = Path(__file__).resolve().parents[2]
    section = (root / "README.md").read_text().split("## Single sign-on", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "tow.yaml").write_text(example)
    config = load_config(tmp_path / "tow.yaml", environ={"APP_SECRET": GOOD_SECRET, "OIDC_CLIENT_SECRET": "x"})
    oidc = config.settings.auth.oidc
    assert config.settings.auth.mode == "oidc" and oidc.issuer_url.endswith("/realms/company")
    assert [(r.organisation, r.role, r.when_group) for r in oidc.organisations] == [
        ("Acme", "member", None), ("Acme", "admin", "tow-admins")]
    assert oidc.provider_logout_enabled is True and oidc.groups_claim == "groups"
    shown = dict(line.split(" = ", 1) for line in effective_config_lines(config))
    assert "tow-admins" in shown["auth.oidc.organisations"]
    # the URIs it says to register with the provider are the ones TOW sends
    from tow_http.accounts.oidc_pages import CALLBACK_PATH
    from tow_http.composition import _identity_provider
    options = _identity_provider(config)._options
    for uri in (options.redirect_uri, options.post_logout_redirect_uri):
        path = uri.removeprefix(config.settings.runtime.public_app_url.rstrip("/"))
        assert f"`<public_app_url>{path}`" in section
    assert options.redirect_uri.endswith(CALLBACK_PATH)
    for text in (section, (root / "config" / "oidc.yaml").read_text()):
        assert "/login?local=1" in text and "tow users create-admin" in text


def test_oidc_settings_refuse_unknown_algorithms_and_a_missing_openid_scope(tmp_path):
    env = {"APP_SECRET": GOOD_SECRET, "OIDC_CLIENT_SECRET": "x"}
    base = "auth:\n  mode: oidc\n  oidc:\n    issuer_url: https://idp.example.com\n    client_id: tow\n"
    for extra, says in (("    allowed_algorithms: [RS256, XS999]\n", "XS999"), ("    scopes: [email]\n", "openid"),
                        ("    organisations:\n      - {organisation: Acme, role: boss}\n", "organisations")):
        (tmp_path / "tow.yaml").write_text(base + extra)
        with pytest.raises(ConfigError, match=says):
            load_config(tmp_path / "tow.yaml", environ=env)
def test_an_unset_public_url_follows_the_address_served_and_a_configured_one_is_kept(tmp_path):
    derived = load_config(write(tmp_path), environ={"APP_SECRET": GOOD_SECRET, "BIND_PORT": "8101"})
    assert derived.settings.runtime.public_app_url == "http://127.0.0.1:8101"
    assert derived.sources["runtime.public_app_url"] == DERIVED_PUBLIC_URL
    served = derived.serving_at("0.0.0.0", 9001)  # noqa: S104 - `tow serve --host 0.0.0.0 --port 9001`
    assert (served.settings.runtime.bind_host, served.settings.runtime.bind_port) == ("0.0.0.0", 9001)  # noqa: S104
    assert served.settings.runtime.public_app_url == "http://127.0.0.1:9001"
    assert served.sources["runtime.bind_port"] == "tow serve --port"
    assert derived.serving_at("::1", None).settings.runtime.public_app_url == "http://[::1]:8101"
    configured = load_config(write(tmp_path), environ={"APP_SECRET": GOOD_SECRET,
                                                       "PUBLIC_APP_URL": "http://tow.internal:8080"})
    assert configured.serving_at(None, 9001).settings.runtime.public_app_url == "http://tow.internal:8080"


def test_the_s3_backend_is_configured_by_yaml_or_prefixed_environment_names_and_picked_by_the_composition_root(
        tmp_path):
    from tow_adapters.fs_upload_store import FsUploadStore
    from tow_adapters.s3_upload_store import S3UploadStore
    from tow_http.composition import Container

    def store(config):
        return Container(config=config, database_url="postgresql://unused/tow").upload_store()

    default = load_config(write(tmp_path), environ={"APP_SECRET": GOOD_SECRET})
    assert default.settings.uploads.backend == "filesystem" and isinstance(store(default), FsUploadStore)
    environ = {"APP_SECRET": GOOD_SECRET, "UPLOADS_BACKEND": "s3", "S3_BUCKET": "tow-files",
               "S3_ENDPOINT_URL": "http://127.0.0.1:8333", "S3_KEY_PREFIX": "acme/uploads/", **S3_KEYS}
    config = load_config(write(tmp_path), environ=environ)
    s3 = config.settings.uploads.s3
    assert (s3.bucket, s3.endpoint_url, s3.region, s3.key_prefix) == (
        "tow-files", "http://127.0.0.1:8333", "us-east-1", "acme/uploads/")
    assert config.sources["uploads.backend"] == "environment UPLOADS_BACKEND"
    assert config.sources["uploads.s3.bucket"] == "environment S3_BUCKET"
    picked = store(config)
    assert isinstance(picked, S3UploadStore)
    assert (picked.bucket, picked.prefix) == ("tow-files", "acme/uploads/")
    shown = "\n".join(effective_config_lines(config))
    assert "TOW_S3_SECRET_ACCESS_KEY = ******** (10 characters)  (environment)" in shown
    assert "tow-secret" not in shown
