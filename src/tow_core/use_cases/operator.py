"""What the operator does from the server's shell (`tow users ...`; rules in ``tow_core.operator_accounts``).
The shell is trusted like the first person to register, so these run unattended: no session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from tow_core import imports, operator_accounts
from tow_core.identity import User
from tow_core.imports import ImportReport
from tow_core.operator_accounts import AdminOutcome
from tow_core.passwords import PasswordHasher
from tow_core.unit_of_work import Transactions
from tow_core.uploads import RasterImageInspector, UploadStore


@dataclass(frozen=True)
class OperatorUseCases:
    transactions: Transactions
    hasher: PasswordHasher
    upload_store: UploadStore | None = None  # where an imported organisation's attachment contents go
    images: RasterImageInspector | None = None

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

    def import_organisation(self, file: BinaryIO) -> ImportReport:
        """`tow import FILE`: restores an organisation export in one unit of work (nothing kept when refused)."""
        with self.transactions.unattended() as work:
            return imports.import_organisation(work.stores.directory, work.stores.organisation_import, None,
                                               file=file, upload_store=self.upload_store, images=self.images)
