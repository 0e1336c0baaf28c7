"""Projects and their grants, explaining access, the access review and server admins (SPEC §1, §2): one unit
of work per call, rules in ``tow_core.administration``."""

from __future__ import annotations

from dataclasses import dataclass

from tow_core import administration
from tow_core.access import ProjectRole, Scope, ScopeKind, Visibility
from tow_core.administration import UNCHANGED, AccessExplanation, AccessReview, Unchanged
from tow_core.errors import NotFound
from tow_core.identity import Grant, Project, ProjectStatus, User
from tow_core.unit_of_work import SessionCredential, Transactions


@dataclass(frozen=True)
class ProjectUseCases:
    transactions: Transactions

    # --- projects -----------------------------------------------------------------------------

    def projects(self, credential: SessionCredential, org_id: int, *,
                 status: ProjectStatus | str | None = None) -> list[Project]:
        with self.transactions.acting_as(credential) as acting:
            return administration.list_projects(acting.stores.directory, acting.principal, org_id=org_id,
                                                status=status)

    def create_project(self, credential: SessionCredential, org_id: int, *, key: str, name: str,
                       visibility: Visibility | str, description: str = "",
                       lead_user_id: int | None = None) -> Project:
        with self.transactions.acting_as(credential) as acting:
            return administration.create_project(acting.stores.directory, acting.principal, org_id=org_id, key=key,
                                                 name=name, visibility=visibility, description=description,
                                                 lead_user_id=lead_user_id)

    def project(self, credential: SessionCredential, org_id: int, project_id: int) -> Project:
        with self.transactions.acting_as(credential) as acting:
            return administration.get_project(acting.stores.directory, acting.principal, org_id=org_id,
                                              project_id=project_id)

    def update_project(self, credential: SessionCredential, org_id: int, project_id: int, *,
                       name: str | None = None, description: str | None = None,
                       lead_user_id: int | None | Unchanged = UNCHANGED, visibility: Visibility | str | None = None,
                       status: ProjectStatus | str | None = None) -> Project:
        """``None`` (``UNCHANGED`` for the lead, where None clears it) leaves a field alone."""
        with self.transactions.acting_as(credential) as acting:
            return administration.update_project(acting.stores.directory, acting.principal, org_id=org_id,
                                                 project_id=project_id, name=name, description=description,
                                                 lead_user_id=lead_user_id, visibility=visibility, status=status)

    # --- grants -------------------------------------------------------------------------------

    def grants(self, credential: SessionCredential, org_id: int, project_id: int) -> list[Grant]:
        with self.transactions.acting_as(credential) as acting:
            return administration.list_grants(acting.stores.directory, acting.principal, org_id=org_id,
                                              project_id=project_id)

    def put_grant(self, credential: SessionCredential, org_id: int, project_id: int, *, role: ProjectRole | str,
                  user_id: int | None = None, group_id: int | None = None) -> Grant:
        with self.transactions.acting_as(credential) as acting:
            return administration.put_grant(acting.stores.directory, acting.principal, org_id=org_id,
                                            project_id=project_id, role=role, user_id=user_id, group_id=group_id)

    def remove_grant(self, credential: SessionCredential, org_id: int, project_id: int, grant_id: int) -> None:
        with self.transactions.acting_as(credential) as acting:
            administration.remove_grant(acting.stores.directory, acting.principal, org_id=org_id,
                                        project_id=project_id, grant_id=grant_id)

    # --- access -------------------------------------------------------------------------------

    def explain_access(self, credential: SessionCredential, org_id: int, scope_kind: ScopeKind, scope_ref: int, *,
                       user_id: int | None = None) -> AccessExplanation:
        """Why ``user_id`` (by default the caller) can or cannot read and write the scope ``KIND:REF`` of
        ``org_id``; an organisation scope must name that organisation (NotFound otherwise)."""
        with self.transactions.acting_as(credential) as acting:
            if scope_kind is ScopeKind.ORGANISATION and scope_ref != org_id:
                raise NotFound("scope not found")
            scope = Scope(scope_kind, org_id, scope_ref)
            who = acting.principal.user_id if user_id is None else user_id
            return administration.explain_access(acting.stores.directory, acting.principal, org_id=org_id,
                                                  user_id=who, scope=scope)

    def access_review(self, credential: SessionCredential, org_id: int) -> AccessReview:
        with self.transactions.acting_as(credential) as acting:
            return administration.access_review(acting.stores.directory, acting.principal, org_id=org_id)

    # --- server admins ------------------------------------------------------------------------

    def server_admins(self, credential: SessionCredential) -> list[User]:
        with self.transactions.acting_as(credential) as acting:
            return administration.list_server_admins(acting.stores.directory, acting.principal)

    def set_server_admin(self, credential: SessionCredential, user_id: int, value: bool) -> User:
        """Grant (``value`` True) or revoke server admin; never the last active one."""
        with self.transactions.acting_as(credential) as acting:
            return administration.set_server_admin(acting.stores.directory, acting.principal, user_id, value)
