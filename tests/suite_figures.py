"""The figures the suite reports (leak-suite counts, drill timings, conformance runs) survive pytest-xdist.

``make test`` runs the suite in worker processes (``-n``, ``--dist loadfile``). A worker has no terminal, and the
module-level stats dicts that tests fill live in the worker that ran them. So every worker hands its stats and
its report lines to the controller when it finishes (``config.workeroutput``, pytest-xdist's channel for exactly
this), and the controller merges them into its own copies of the same dicts before ``pytest_terminal_summary``
prints them. Without xdist (``pytest tests/unit/test_x.py``) nothing changes: lines print where they are said.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest

# (module, name) of every module-level stats object printed by tests/conftest.py's terminal summary.
STAT_SOURCES = (
    ("tests.contract.test_records_leak", "LEAK_STATS"),
    ("tests.contract.test_semantic_recall", "RECALL_STATS"),
    ("tests.contract.test_visibility_differential", "STATS"),
    ("tests.contract.test_visibility_differential", "SEARCH_STATS"),
    ("tests.e2e.test_crash_drills", "CRASH_STATS"),
    ("tests.e2e.test_database_outage", "OUTAGE_STATS"),
    ("tests.e2e.test_several_processes", "STATS"),
    ("tests.e2e.test_openapi_conformance", "CONFORMANCE_STATS"),
    ("tests.contract.test_member_export_differential", "STATS"),
    ("tests.e2e.test_export_import", "TAMPER_STATS"),
    ("tests.seaweedfs", "SEAWEEDFS_STATS"),
    ("tests.contract.test_uploads_leak", "UPLOAD_LEAK_STATS"),
    ("tests.e2e.test_upload_crash", "KILL_STATS"),
    ("tests.e2e.test_upload_hostile_names", "HOSTILE_STATS"),
)

# Lines said by a worker, printed by the controller in the summary.
_SAID: list[str] = []


def say(config: pytest.Config, line: str) -> None:
    """Print ``line`` on the terminal now, or, in an xdist worker, in the controller's summary."""
    if hasattr(config, "workerinput"):
        _SAID.append(line)
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # fixture teardown output is captured otherwise
        reporter.write_line("\n" + line)


def _plain(value: Any) -> Any:
    """Counters, defaultdicts and tuples as the plain types execnet can carry."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _merge(into: Any, new: Any) -> None:
    """Counts add up; nested dicts merge; lists concatenate; anything else is the newest value."""
    if isinstance(into, list):
        into.extend(new)
        return
    for key, value in new.items():
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            _merge(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            current.extend(value)
        elif (isinstance(current, (int, float)) and isinstance(value, (int, float))
              and not isinstance(current, bool) and not isinstance(value, bool)):
            into[key] = current + value
        else:
            into[key] = value


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is None:
        return
    stats = {}
    for module_name, name in STAT_SOURCES:
        module = sys.modules.get(module_name)  # only what this worker ran has figures
        if module is not None:
            stats[f"{module_name}:{name}"] = _plain(getattr(module, name))
    output["tow_stats"] = stats
    output["tow_said"] = list(_SAID)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # pytest-xdist's hook, on the controller
    output = getattr(node, "workeroutput", {})
    for key, value in output.get("tow_stats", {}).items():
        module_name, name = key.split(":")
        _merge(getattr(importlib.import_module(module_name), name), value)
    _SAID.extend(output.get("tow_said", []))


def said_by_workers() -> list[str]:
    return list(_SAID)
