"""The ``email`` section (issue 19): console by default, EMAIL_-prefixed overrides (``HOST`` and ``PORT`` alone
mean other things), SMTP credentials only from the environment and masked wherever settings are shown, bad
values refused with one line naming the key, and the README's production example valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from tow_http.config import ConfigError, effective_config_lines, env_name, load_config

GOOD_SECRET = "x" * 40
ROOT = Path(__file__).resolve().parents[2]


def config_of(tmp_path: Path, yaml_text: str = "", **environ: str):
    (tmp_path / "tow.yaml").write_text(yaml_text)
    return load_config(tmp_path / "tow.yaml", environ={"APP_SECRET": GOOD_SECRET, **environ})


def test_console_is_the_default_and_every_email_key_is_overridden_by_an_email_variable(tmp_path):
    email = config_of(tmp_path).settings.email
    assert (email.transport, email.max_attempts, email.smtp.security, email.smtp.port) == (
        "console", 8, "starttls", 587)
    assert env_name(("email", "smtp", "host")) == "EMAIL_SMTP_HOST"
    config = config_of(tmp_path, HOST="elsewhere", PORT="1", EMAIL_TRANSPORT="smtp", EMAIL_SMTP_HOST="mail.example",
                       EMAIL_SMTP_PORT="465", EMAIL_SMTP_SECURITY="tls")
    smtp = config.settings.email.smtp
    assert (config.settings.email.transport, smtp.host, smtp.port, smtp.security) == ("smtp", "mail.example", 465,
                                                                                      "tls")
    assert config.sources["email.smtp.host"] == "environment EMAIL_SMTP_HOST"


def test_smtp_credentials_come_from_the_environment_and_are_masked(tmp_path):
    config = config_of(tmp_path, TOW_SMTP_USERNAME="relay-user", TOW_SMTP_PASSWORD="relay-secret-password")
    assert (config.secrets.tow_smtp_username, config.secrets.tow_smtp_password) == ("relay-user",
                                                                                   "relay-secret-password")
    shown = "\n".join(effective_config_lines(config))
    assert "relay-secret-password" not in shown and "relay-user" not in shown
    assert "TOW_SMTP_PASSWORD = ********" in shown
    with pytest.raises(ConfigError, match="unknown key"):
        config_of(tmp_path, "email:\n  smtp:\n    password: x\n")  # never in tow.yaml


@pytest.mark.parametrize(("yaml_text", "environ", "says"), [
    ("email:\n  transport: pigeon\n", {}, "email.transport"),
    ("email:\n  from_address: not an address\n", {}, "email.from_address"),
    ("email:\n  reply_to: nobody\n", {}, "email.reply_to"),
    ("email:\n  max_attempts: 0\n", {}, "email.max_attempts"),
    ("email:\n  smtp:\n    security: ssl\n", {}, "email.smtp.security"),
    ("email:\n  transport: smtp\n  smtp:\n    host: ''\n", {}, "email.smtp.host"),
    ("", {"TOW_SMTP_USERNAME": "only-the-user"}, "TOW_SMTP_PASSWORD"),
])
def test_bad_email_settings_stop_startup_with_one_line_naming_the_key(tmp_path, yaml_text, environ, says):
    with pytest.raises(ConfigError, match=says):
        config_of(tmp_path, yaml_text, **environ)


def test_the_readme_email_example_and_the_production_example_are_valid(tmp_path):
    section = (ROOT / "README.md").read_text().split("## Email and notifications\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    email = config_of(tmp_path, example).settings.email
    assert (email.transport, email.smtp.host, email.smtp.security) == ("smtp", "smtp.example.com", "starttls")
    production = load_config(ROOT / "config" / "production-https.yaml", environ={"APP_SECRET": GOOD_SECRET})
    assert production.settings.email.transport == "smtp" and production.settings.email.reply_to
