"""The dependency rule, checked beyond import-linter's list: tow_core imports only the standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
CORE = SRC / "tow_core"


def imported_top_level_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_tow_core_imports_only_the_standard_library_and_itself():
    allowed = set(sys.stdlib_module_names) | {"tow_core", "__future__"}
    offenders = {
        f"{path.relative_to(CORE)}: {name}"
        for path in CORE.rglob("*.py")
        for name in imported_top_level_modules(path) - allowed
    }
    assert not offenders, offenders


# Issue 13 (data controls): every byte that leaves the deployment goes through an adapter that writes the
# egress ledger. Only these modules may import an HTTP client library; the OpenAI SDK is confined to
# tow_adapters.openai_client by tests/unit/test_openai_boundary.py. pyproject.toml's import-linter contract
# says the same for the third-party packages; this also covers the standard library's clients, which
# import-linter cannot forbid without forbidding urllib.parse and http.HTTPStatus too.
OUTBOUND_HTTP_MODULES = ("httpx", "requests", "urllib3", "aiohttp", "urllib.request", "http.client", "boto3",
                         "botocore")
NAMED_PROVIDER_ADAPTERS = {"tow_adapters/exa_web_search.py", "tow_adapters/openai_client.py",
                           "tow_adapters/oidc_provider.py"}  # the single sign-on provider (no company data)
# The upload bucket is the deployment's own storage (no egress ledger), reached by its one adapter only.
OWN_STORAGE_ADAPTERS = {"tow_adapters/s3_upload_store.py": {"boto3", "botocore"}}


def outbound_http_imports(path: Path) -> set[str]:
    """The outbound HTTP modules ``path`` imports, however spelled (``import urllib.request``, ``from urllib
    import request``, ``from http.client import HTTPConnection``, ``import requests.adapters``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {module for module in OUTBOUND_HTTP_MODULES
            for name in imported if name == module or name.startswith(module + ".")}


def outbound_http_offenders(root: Path) -> set[str]:
    return {
        f"{path.relative_to(root).as_posix()}: {module}"
        for path in root.rglob("*.py") if path.relative_to(root).as_posix() not in NAMED_PROVIDER_ADAPTERS
        for module in outbound_http_imports(path)
        if module not in OWN_STORAGE_ADAPTERS.get(path.relative_to(root).as_posix(), set())
    }


def test_outbound_http_libraries_are_imported_only_by_the_named_provider_adapters():
    assert not outbound_http_offenders(SRC)


@pytest.mark.parametrize("line", [
    "import httpx", "import requests.adapters", "from urllib import request", "import urllib.request as u",
    "from urllib.request import urlopen", "from http import client", "from http.client import HTTPSConnection",
    "import urllib3", "import aiohttp", "import boto3", "from botocore.config import Config",
])
def test_the_outbound_http_rule_catches_every_spelling_outside_the_named_adapters(tmp_path, line):
    (tmp_path / "tow_http").mkdir()
    (tmp_path / "tow_http" / "sneaky.py").write_text(f"{line}\nfrom urllib.parse import urlsplit\n")
    (tmp_path / "tow_adapters").mkdir()
    (tmp_path / "tow_adapters" / "exa_web_search.py").write_text(f"{line}\n")  # named: allowed
    [offender] = outbound_http_offenders(tmp_path)
    assert offender.startswith("tow_http/sneaky.py: ")


def test_the_s3_upload_store_may_import_boto3_and_nothing_else_outbound(tmp_path):
    (tmp_path / "tow_adapters").mkdir()
    (tmp_path / "tow_adapters" / "s3_upload_store.py").write_text("import boto3\nimport botocore.config\n"
                                                                  "import requests\n")
    assert outbound_http_offenders(tmp_path) == {"tow_adapters/s3_upload_store.py: requests"}


def test_the_outbound_http_rule_leaves_urllib_parse_and_http_status_alone(tmp_path):
    (tmp_path / "ok.py").write_text("from urllib.parse import quote\nfrom http import HTTPStatus\nimport urllib\n")
    assert not outbound_http_offenders(tmp_path)


def test_no_core_file_is_over_450_lines():
    """Issue 12: smaller rooms; a module that grows past this gets split by what it holds."""
    long = {str(p.relative_to(CORE)): n for p in CORE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


EDGE_DEPENDENCIES = {"caller", "session_cookies", "settings", "schema_inspector", "form"}


def test_every_handler_asks_only_for_edge_values_and_the_use_cases_it_calls():
    """Issue 12: no handler or page receives a bag of stores or services, opens a transaction or calls a
    port; each asks by name for the use case objects it calls (tow_http.bootstrap) and for edge values."""
    import msgspec
    from litestar.routes import HTTPRoute

    from tests.fakes import FakePasswordHasher
    from tow_http.app import create_app
    from tow_http.bootstrap import use_cases
    from tow_http.config import Settings
    from tow_http.context import Services
    from tow_http.session_cookie import SessionCookieSigner

    services = Services(settings=msgspec.convert({}, Settings), transaction=lambda: None, sign_in_log=None,
                        password_hasher=FakePasswordHasher(), cookie_signer=SessionCookieSigner("k" * 40))
    app = create_app(services=services, schema_inspector=None)
    names = set(use_cases(services))
    offenders, handlers = {}, 0
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            handlers += 1
            asked = set(handler.resolve_dependencies()) & set(handler.parsed_fn_signature.parameters)
            if extra := asked - EDGE_DEPENDENCIES - names:
                offenders[handler.handler_name] = sorted(extra)
            uses = asked & names
            if len(uses) > 1:
                offenders[handler.handler_name] = f"calls {sorted(uses)}: one use case object per handler"
    assert handlers > 100
    assert not offenders, offenders
