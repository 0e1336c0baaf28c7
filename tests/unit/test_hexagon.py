"""The dependency rule, checked beyond import-linter's list: tow_core imports only the standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "src" / "tow_core"


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
