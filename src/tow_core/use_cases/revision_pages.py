"""A doc's revisions as pages (issue 18): one version, the diff between two, and restoring one (rules in
``tow_core.revisions``). Each page reads its frame and content in one unit of work; restore is one save."""

from __future__ import annotations

from dataclasses import dataclass

from tow_core import revisions
from tow_core.records import DisplayId, Record
from tow_core.revisions import VersionDiff, VersionText
from tow_core.unit_of_work import Credential, Transactions
from tow_core.use_cases.frame import Framed, frame_of
from tow_core.use_cases.record_pages import people_of


@dataclass(frozen=True)
class RevisionView:
    doc: Record  # as it is now
    text: VersionText
    people: dict[int, str]
    can_restore: bool  # the caller may write the doc


@dataclass(frozen=True)
class DiffView:
    doc: Record
    diff: VersionDiff


@dataclass(frozen=True)
class RevisionPageUseCases:
    transactions: Transactions

    def version(self, credential: Credential, org_id: int, display_id: DisplayId, version: int,
                project_key: str | None) -> Framed[RevisionView]:
        """A readable doc's title and body at ``version`` (NotFound for a doc the caller cannot read)."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            doc, text = revisions.version_of(ws, acting.stores.history.revisions, display_id, version)
            view = RevisionView(doc, text, people_of(acting, org_id), revisions.can_restore(ws, doc))
            return Framed(frame_of(acting, org_id, project_key), view)

    def compare(self, credential: Credential, org_id: int, display_id: DisplayId, old: int, new: int | None,
                project_key: str | None) -> Framed[DiffView]:
        """The line diff from version ``old`` to ``new`` (the current version when None)."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            doc, diff = revisions.compare(ws, acting.stores.history.revisions, display_id, old, new)
            return Framed(frame_of(acting, org_id, project_key), DiffView(doc, diff))

    def restore(self, credential: Credential, org_id: int, display_id: DisplayId, version: int, *,
                expected_version: int) -> Record:
        """Save ``version``'s title and body as the doc's next version (a normal, audited edit)."""
        with self.transactions.acting_as(credential) as acting:
            return revisions.restore(acting.workspace(org_id), acting.stores.history.revisions, display_id,
                                     version, expected_version=expected_version)
