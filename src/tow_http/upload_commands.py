"""`tow uploads verify [--repair]`: check that the upload store and the upload rows agree (SPEC §5, §12)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from tow_core.upload_integrity import verify_uploads
from tow_http.composition import container_for, upload_row_names
from tow_http.config import LoadedConfig

VERIFY_DESCRIPTION = """\
Compare the files of the upload store (under uploads.upload_storage_path, or the objects under
uploads.s3.key_prefix in the bucket when uploads.backend is s3) with the upload rows and report:
  orphan files   files no row points at (an upload killed between writing its file and committing
                 its row) — unreachable, only wasting space. The files of deleted uploads, records and
                 organisations are not orphans for long: the job worker deletes them after the deletion
                 commits (they show here only if no worker has run since);
  partial files  temporary files of writes that never finished (a killed upload) — never visible; on
                 S3, incomplete multipart uploads (named <storage name>:<upload id>);
  missing files  rows whose file is gone — only possible if files were removed or not restored from
                 outside TOW; restore the upload directory from the backup taken with the database.
Files younger than --grace-seconds are skipped: they may belong to an upload that is committing.
With --repair, orphan and partial files are moved to <upload root>/quarantine/<timestamp>/ (on S3:
<key_prefix>quarantine/<timestamp>/, an incomplete upload completed there as <name>.partial with the parts
it has); nothing is deleted (remove them once you are satisfied); missing files are reported again, since no
repair can recreate them. Exit status: 0 when everything is consistent (or was repaired), 1 otherwise."""


def _verify(args: argparse.Namespace, config: LoadedConfig) -> int:
    with container_for(config) as container:
        names = upload_row_names(container)
        store = container.upload_store()
        report = verify_uploads(store, names, now=datetime.now(UTC), grace=timedelta(seconds=args.grace_seconds),
                                repair=args.repair)
    print(f"upload store: {store.location}")
    print(f"checked {report.checked_files} files and {report.checked_rows} rows; "
          f"{report.skipped_recent} recent files skipped")
    for label, names_found in (("orphan file", report.orphan_files), ("partial file", report.partial_files),
                               ("missing file (row without its file)", report.missing_files)):
        for name in names_found:
            print(f"{label}: {name}")
    for target in report.quarantined:
        print(f"quarantined: {target}")
    print(f"{len(report.orphan_files)} orphan, {len(report.partial_files)} partial, "
          f"{len(report.missing_files)} missing, {len(report.quarantined)} quarantined")
    return 0 if report.clean else 1


def add_upload_commands(commands: argparse._SubParsersAction) -> None:
    uploads = commands.add_parser("uploads", help="the upload store", description="Check the upload store.")
    upload_commands = uploads.add_subparsers(dest="uploads_command", metavar="COMMAND", required=True)
    verify = upload_commands.add_parser(
        "verify", help="report orphan, partial and missing upload files (--repair quarantines)",
        description=VERIFY_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("--repair", action="store_true",
                        help="move orphan and partial files into the quarantine directory")
    verify.add_argument("--grace-seconds", type=int, default=3600, metavar="N",
                        help="skip files modified in the last N seconds (default 3600)")
    verify.set_defaults(handler=_verify, needs_app_secret=False)
