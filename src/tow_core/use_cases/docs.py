"""Doc pages: revisions, the page tree, breadcrumbs, scope moves and delete (rules in ``tow_core.docs``)."""

from __future__ import annotations

from dataclasses import dataclass

from tow_core import docs
from tow_core.docs import Branch, Crumb, Revision, TreeNode
from tow_core.records import DisplayId, Record
from tow_core.unit_of_work import Credential, Transactions


@dataclass(frozen=True)
class DocUseCases:
    transactions: Transactions

    def revisions(self, credential: Credential, org_id: int, display_id: DisplayId, *,
                  before_version: int | None, limit: int) -> list[Revision]:
        with self.transactions.acting_as(credential) as acting:
            return list(docs.list_revisions(acting.workspace(org_id), acting.stores.history.revisions, display_id,
                                            before_version=before_version, limit=limit))

    def tree(self, credential: Credential, org_id: int, project: str | None) -> list[TreeNode]:
        with self.transactions.acting_as(credential) as acting:
            return list(docs.doc_tree(acting.workspace(org_id), acting.stores.history.tree, project))

    def branches(self, credential: Credential, org_id: int, project: str | None, parent: DisplayId
                 ) -> list[Branch]:
        """The readable sub-pages of a readable doc (the sidebar's tree opens them on demand)."""
        with self.transactions.acting_as(credential) as acting:
            return docs.doc_branches(acting.workspace(org_id), acting.stores.history.tree, project, parent)

    def breadcrumbs(self, credential: Credential, org_id: int, display_id: DisplayId) -> list[Crumb]:
        with self.transactions.acting_as(credential) as acting:
            return list(docs.breadcrumbs(acting.workspace(org_id), acting.stores.history.tree, display_id))

    def move_scope(self, credential: Credential, org_id: int, display_id: DisplayId, scope_kind: str,
                   scope_id: int | None, *, version: int | None) -> Record:
        with self.transactions.acting_as(credential) as acting:
            return docs.move_scope(acting.workspace(org_id), display_id, scope_kind, scope_id, version=version)

    def make_private(self, credential: Credential, org_id: int, display_id: DisplayId, *,
                     version: int | None) -> Record:
        with self.transactions.acting_as(credential) as acting:
            return docs.make_private(acting.workspace(org_id), display_id, version=version)

    def delete(self, credential: Credential, org_id: int, display_id: DisplayId) -> None:
        with self.transactions.acting_as(credential) as acting:
            docs.delete_doc(acting.workspace(org_id), acting.stores.history.tree, display_id)
