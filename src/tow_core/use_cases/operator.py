"""What the operator does from the server's shell (`tow users ...`; rules in ``tow_core.operator_accounts``).
The shell is trusted like the first person to register, so these run unattended: no session."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from tow_core import exports, imports, operator_accounts
from tow_core.errors import NotConfigured
from tow_core.exports import OperatorExport
from tow_core.identity import User
from tow_core.imports import ImportReport
from tow_core.operator_accounts import AdminOutcome
from tow_core.passwords import PasswordHasher
from tow_core.progress import Progress, no_progress
from tow_core.unit_of_work import Transactions
from tow_core.uploads import RasterImageInspector, UploadStore
from tow_core.use_cases.exports import ExportSnapshot


@dataclass(frozen=True, slots=True)
class WrittenOperatorExport:
    export: OperatorExport
    items: int  # people, members, records, ... together


@dataclass(frozen=True)
class OperatorUseCases:
    transactions: Transactions
    hasher: PasswordHasher
    upload_store: UploadStore | None = None  # where an imported organisation's attachment contents go
    images: RasterImageInspector | None = None
    export_snapshot: ExportSnapshot | None = None  # `tow export` reads the database as the job worker does

    def create_admin(self, *, email: str, display_name: str | None, read_password: Callable[[], str]
                     ) -> AdminOutcome:
        with self.transactions.unattended() as work:
            return operator_accounts.create_admin_from_shell(work.stores.directory, self.hasher, email=email,
                                                             display_name=display_name, read_password=read_password)

    def server_admins(self) -> list[User]:
        with self.transactions.unattended() as work:
            return operator_accounts.server_admins_for_operator(work.stores.directory)

    def reset_password(self, *, email: str, password: str) -> int:
        """Sets the password and signs the account out everywhere; how many sessions were revoked."""
        with self.transactions.unattended() as work:
            return operator_accounts.reset_password_from_shell(work.stores.directory, work.stores.tokens, self.hasher,
                                                               email=email, password=password, now=work.now)

    def import_organisation(self, file: BinaryIO, progress: Progress = no_progress) -> ImportReport:
        """`tow import FILE`: restores an organisation export in one unit of work (nothing kept when refused)."""
        with self.transactions.unattended() as work:
            return imports.import_organisation(work.stores.directory, work.stores.organisation_import, None,
                                               file=file, upload_store=self.upload_store, images=self.images,
                                               progress=progress)

    def export(self, *, organisation: str, member_email: str | None, include_attachment_contents: bool,
               destination: Callable[[], AbstractContextManager[TextIO]], progress: Progress = no_progress,
               stage: str = "exporting") -> WrittenOperatorExport:
        """`tow export`: the organisation export, or the member export of ``member_email``, written by the
        export job's own writer from one snapshot to ``destination`` (which publishes the file only when its
        block succeeds). The audit entry commits inside that block, so a file appears only once audited and a
        failed write is audited as nothing."""
        if self.export_snapshot is None:
            raise NotConfigured("exports cannot be read in this process")
        with self.transactions.unattended() as work:
            wanted = exports.operator_export(work.stores.directory, organisation=organisation,
                                             member_email=member_email,
                                             include_attachment_contents=include_attachment_contents)
        with self.export_snapshot(self.transactions.clock()) as source, destination() as out:
            items = exports.write_export(wanted.subject, source, out, progress, stage=stage)
            with self.transactions.unattended() as work:
                exports.audit_operator_export(work.stores.directory, wanted, items=items)
        return WrittenOperatorExport(wanted, items)
