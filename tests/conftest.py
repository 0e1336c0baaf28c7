"""Suite-wide options."""


def pytest_addoption(parser):
    parser.addoption(
        "--nightly",
        action="store_true",
        default=False,
        help="run the long property-test runs (thousands of random worlds) meant for nightly CI",
    )


# Fake OpenAI/Exa servers and the environment pointing TOW at them (tests/ai_fixtures.py).
# The embedded PostgreSQL and the app built on it (tests/postgres_fixtures.py), for tests/contract and tests/e2e.
# SeaweedFS, the real S3-compatible server (tests/seaweedfs.py), started only if a test asks for it.
# The suite's figures carried from pytest-xdist workers to the summary (tests/suite_figures.py).
pytest_plugins = ["tests.ai_fixtures", "tests.postgres_fixtures", "tests.seaweedfs", "tests.suite_figures"]


def pytest_terminal_summary(terminalreporter):
    from tests.contract.test_records_leak import LEAK_STATS
    from tests.contract.test_semantic_recall import RECALL_STATS
    from tests.contract.test_visibility_differential import SEARCH_STATS, STATS
    from tests.suite_figures import said_by_workers

    for line in said_by_workers():
        terminalreporter.write_line(line)
    _upload_summary(terminalreporter)
    _drill_summary(terminalreporter)
    _seaweedfs_summary(terminalreporter)
    _export_summary(terminalreporter)
    _conformance_summary(terminalreporter)

    if LEAK_STATS["worlds"]:
        terminalreporter.write_line(
            f"records leak test: {LEAK_STATS['worlds']} worlds, {LEAK_STATS['checks']} (user, path, record) checks, "
            f"{LEAK_STATS['leaks']} leaks"
        )

    if STATS["worlds"]:
        terminalreporter.write_line(
            f"visibility differential: {STATS['worlds']} worlds, {STATS['pairs']} (user, record, read|write) "
            f"pairs compared, {STATS['disagreements']} disagreements"
        )

    if SEARCH_STATS["worlds"]:
        terminalreporter.write_line(
            f"search differential: {SEARCH_STATS['worlds']} worlds, {SEARCH_STATS['searches']} semantic/hybrid "
            f"searches, {SEARCH_STATS['leaks']} unreadable results, {SEARCH_STATS['missing']} readable records missed"
        )
    for line in RECALL_STATS:
        terminalreporter.write_line(line)


def _drill_summary(terminalreporter) -> None:
    """The figures of the several-processes test and the outage and crash drills (issue 17)."""
    from tests.e2e.test_crash_drills import CRASH_STATS
    from tests.e2e.test_database_outage import OUTAGE_STATS
    from tests.e2e.test_several_processes import STATS as SEVERAL_STATS

    if SEVERAL_STATS:
        s = SEVERAL_STATS
        terminalreporter.write_line(
            f"several processes: 2 tow serve + 2 tow worker on one database, {s['jobs']} jobs and {s['embeddings']} "
            f"embeddings each done exactly once (queued in {s['queue_seconds']} s, drained in {s['drain_seconds']} s)")
    for variant, o in OUTAGE_STATS.items():
        terminalreporter.write_line(
            f"database outage drill ({variant}, {o['outage_seconds']} s down): {o['requests']} requests, "
            f"{o['during']} during the outage answered {o['during_statuses']} (slowest {o['max_seconds_during']} s); "
            f"recovered {o['recovery_seconds']} s after PostgreSQL was back; writes acknowledged "
            f"{o['writes_acknowledged']}, found {o['writes_found']}; {o['exports']} exports done, the interrupted "
            f"chat run answered once (attempt {o['run_attempts']})")
    if CRASH_STATS:
        terminalreporter.write_line(
            f"worker crash drill: SIGKILL mid-export, mid-embedding batch and mid-agent run; each completed once by "
            f"another worker {CRASH_STATS['recovered_seconds']} s after the kill (lease 10 s)")


def _conformance_summary(terminalreporter) -> None:
    from tests.e2e.test_openapi_conformance import CONFORMANCE_STATS

    for role, run in CONFORMANCE_STATS.items():
        failures = ", ".join(f"{check} {count}" for check, count in sorted(run["failures"].items())) or "none"
        terminalreporter.write_line(
            f"openapi conformance ({role}): {run['cases']} cases over {run['operations']} operations in "
            f"{run['seconds']:.0f} s, {run['responses_2xx']} answered 2xx, {run['responses_5xx']} >= 500, "
            f"failures: {failures}; "
            f"member 2xx on restricted operations: {run['member_successes']}")


def _export_summary(terminalreporter) -> None:
    from tests.contract.test_member_export_differential import STATS as EXPORT_STATS
    from tests.e2e.test_export_import import TAMPER_STATS

    if EXPORT_STATS["worlds"]:
        terminalreporter.write_line(
            f"member export differential: {EXPORT_STATS['worlds']} worlds, {EXPORT_STATS['exports']} member exports, "
            f"{EXPORT_STATS['leaks']} unreadable display IDs named")
    if EXPORT_STATS["revoked_worlds"]:
        terminalreporter.write_line(
            f"export revocation differential: {EXPORT_STATS['revoked_worlds']} revoked worlds, "
            f"{EXPORT_STATS['refused']} downloads refused, {EXPORT_STATS['downloads_leaking']} allowed downloads "
            "holding a record no longer readable")
    if TAMPER_STATS["tried"]:
        terminalreporter.write_line(
            f"import tampering: {TAMPER_STATS['tried']} mutated exports, {TAMPER_STATS['refused']} refused with the "
            f"offending path, {TAMPER_STATS['changed_database']} left the database changed")


def _seaweedfs_summary(terminalreporter) -> None:
    from tests.seaweedfs import SEAWEEDFS_STATS

    if SEAWEEDFS_STATS:
        terminalreporter.write_line(f"seaweedfs: first object stored {SEAWEEDFS_STATS['startup_seconds']:.1f} s after "
                                    "`weed mini` started (once per session)")


def _upload_summary(terminalreporter) -> None:
    from tests.contract.test_uploads_leak import UPLOAD_LEAK_STATS
    from tests.e2e.test_upload_crash import KILL_STATS
    from tests.e2e.test_upload_hostile_names import HOSTILE_STATS

    if HOSTILE_STATS["names"]:
        terminalreporter.write_line(f"upload hostile names: {HOSTILE_STATS['names']} tried, "
                                    f"{HOSTILE_STATS['outside_writes']} writes outside the upload root")
    if KILL_STATS["runs"]:
        k = KILL_STATS
        terminalreporter.write_line(
            f"upload crash test: {k['runs']} uploads, {k['kills']} SIGKILLs mid-upload "
            f"({k['between_file_and_row']} aimed between durable file and row commit), {k['completed']} completed "
            f"first; afterwards {k['orphans']} orphan and {k['partials']} partial files quarantined, "
            "0 partial files visible, 0 rows without their file"
            + (f"; {k['serve_kills']} tow serve processes SIGKILLed mid-upload, same checks held" if k["serve_kills"]
               else ""))
    if UPLOAD_LEAK_STATS["worlds"]:
        s = UPLOAD_LEAK_STATS
        terminalreporter.write_line(f"upload leak test: {s['worlds']} worlds, {s['checks']} (user, upload) checks, "
                                    f"{s['leaks']} leaks")


# The longest files (``make test --durations``) start first, so that with pytest-xdist's ``--dist loadfile`` the
# short ones fill in around them instead of one long file running alone at the end. Order within a file is kept.
LONGEST_FIRST = (
    "tests/contract/test_token_leak_differential.py",
    "tests/e2e/test_openapi_conformance.py",
    "tests/contract/test_records_leak.py",
    "tests/e2e/test_database_outage.py",
    "tests/e2e/test_several_processes.py",
    "tests/e2e/test_upload_crash.py",
    "tests/e2e/test_uploads_s3_live.py",
    "tests/e2e/test_availability.py",
    "tests/contract/test_visibility_differential.py",
    "tests/contract/test_uploads_leak.py",
    "tests/e2e/test_crash_drills.py",
    "tests/e2e/test_serve_lifecycle.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: keeps the rest
