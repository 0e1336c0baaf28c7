"""`tow export`: an organisation's export, or one member's, written to a file by the operator (SPEC §5, §12)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tow_core.errors import Conflict, InvalidInput, NotFound
from tow_core.readiness import require_current_schema
from tow_http.bootstrap import operator_use_cases
from tow_http.composition import container_for, export_file_at
from tow_http.config import LoadedConfig
from tow_http.progress import ProgressDisplay

EXPORT_DESCRIPTION = """\
Write an export of an organisation to FILE, run on the server with the database (like `tow import`).
The file is the one the API's export job writes for the same data (docs/export-format.md), from one
consistent snapshot:
  without --member   the organisation export: members, groups, projects, grants and every record
                     outside private scopes, with history, memory diffs and attachment metadata
                     (what owners and admins get from the API); `tow import` restores it elsewhere;
  --member EMAIL     that member's export: exactly what they can read, their private records included.
--attachment-contents embeds attachment files (base64) as the API's include_attachment_contents does.
The file is written to a temporary file beside FILE (mode 0600: it is as confidential as the records)
and renamed when complete, so a failed export leaves nothing. An existing FILE is never replaced unless
--force. The export is written to the organisation's audit log (export.written, without an actor, as
an import from the shell is). Prints what was written."""


def _export(args: argparse.Namespace, config: LoadedConfig) -> int:
    output: Path = args.output.absolute()
    if output.is_dir():
        raise InvalidInput(f"{output} is a directory: name the file to write", field="output")
    if output.exists() and not args.force:
        raise Conflict(f"{output} already exists: choose another --output, or add --force to replace it",
                       field="output")
    if not output.parent.is_dir():
        raise NotFound(f"{output.parent} is not a directory", field="output")
    with container_for(config) as container:
        require_current_schema(container.schema_migrator())
        exports = operator_use_cases(container.services(), container.export_snapshots())
        with ProgressDisplay() as progress:
            written = exports.export(organisation=args.organisation, member_email=args.member,
                                     include_attachment_contents=args.attachment_contents,
                                     destination=export_file_at(output, overwrite=args.force), progress=progress,
                                     stage=f"writing {output.name}")
    export = written.export
    what = f"member export of {export.member.email}" if export.member else "organisation export"
    print(f"wrote the {what} of {export.organisation.name!r} (organisation {export.organisation.id}) to {output}: "
          f"{written.items} items, {output.stat().st_size} bytes")
    return 0


def add_export_command(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="write an organisation's or a member's export to a file",
        description=EXPORT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--organisation", "--organization", required=True, metavar="ID|NAME",
                        help="the organisation, by id or by name (case-insensitive)")
    export.add_argument("--member", metavar="EMAIL",
                        help="write this member's export (what they can read) instead of the organisation's")
    export.add_argument("--output", "-o", required=True, type=Path, metavar="FILE", help="the file to write")
    export.add_argument("--attachment-contents", action="store_true",
                        help="embed the attachments' files (base64), not only their metadata")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export.set_defaults(handler=_export, needs_app_secret=True)
