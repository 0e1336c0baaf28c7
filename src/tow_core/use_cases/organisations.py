"""Organisations, their members, groups and invites, and the audit log (SPEC §1, §8): one unit of work per
call, rules in ``tow_core.administration`` and ``tow_core.accounts``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from tow_core import accounts, administration
from tow_core.access import OrgRole
from tow_core.audit import AuditEntry, AuditQuery
from tow_core.identity import Group, Invite, InviteState, Member, Organisation, User, WorkflowMode
from tow_core.unit_of_work import SessionCredential, Transactions


class InviteTokens(Protocol):
    """Makes an invite's secret token and the hash stored in its place (the session cookie signer does)."""

    def new_token(self) -> str: ...

    def token_hash(self, token: str) -> str: ...


@dataclass(frozen=True)
class DatedInvite:
    """An invite and its state at the moment it was read."""

    invite: Invite
    state: InviteState


@dataclass(frozen=True)
class CreatedInvite:
    """A new invite and its token, shown once: only the token's hash is stored."""

    invite: Invite
    state: InviteState
    token: str


@dataclass(frozen=True)
class JoinedAccount:
    """After accepting an invite: the account, its organisations with roles, and the one it just joined."""

    user: User
    organisations: list[tuple[Organisation, OrgRole]]
    organisation_id: int


@dataclass(frozen=True)
class OrganisationUseCases:
    transactions: Transactions
    tokens: InviteTokens

    # --- organisations ------------------------------------------------------------------------

    def create_organisation(self, credential: SessionCredential, *, name: str,
                            workflow_mode: WorkflowMode | str) -> Organisation:
        with self.transactions.acting_as(credential) as acting:
            return administration.create_organisation(acting.stores.directory, acting.principal, name=name,
                                                      workflow_mode=workflow_mode)

    def organisation(self, credential: SessionCredential, org_id: int) -> Organisation:
        with self.transactions.acting_as(credential) as acting:
            return administration.get_organisation(acting.stores.directory, acting.principal, org_id=org_id)

    def update_organisation(self, credential: SessionCredential, org_id: int, *, name: str | None,
                            workflow_mode: WorkflowMode | str | None) -> Organisation:
        with self.transactions.acting_as(credential) as acting:
            return administration.update_organisation(acting.stores.directory, acting.principal, org_id=org_id,
                                                      name=name, workflow_mode=workflow_mode)

    # --- members ------------------------------------------------------------------------------

    def members(self, credential: SessionCredential, org_id: int) -> list[Member]:
        with self.transactions.acting_as(credential) as acting:
            return administration.list_members(acting.stores.directory, acting.principal, org_id=org_id)

    def change_member_role(self, credential: SessionCredential, org_id: int, user_id: int,
                           role: OrgRole | str) -> Member:
        with self.transactions.acting_as(credential) as acting:
            return administration.change_member_role(acting.stores.directory, acting.principal, org_id=org_id,
                                                     user_id=user_id, role=role)

    def remove_member(self, credential: SessionCredential, org_id: int, user_id: int) -> None:
        with self.transactions.acting_as(credential) as acting:
            administration.remove_member(acting.stores.directory, acting.principal, org_id=org_id, user_id=user_id)

    # --- groups -------------------------------------------------------------------------------

    def groups(self, credential: SessionCredential, org_id: int) -> list[Group]:
        with self.transactions.acting_as(credential) as acting:
            return administration.list_groups(acting.stores.directory, acting.principal, org_id=org_id)

    def create_group(self, credential: SessionCredential, org_id: int, name: str) -> Group:
        with self.transactions.acting_as(credential) as acting:
            return administration.create_group(acting.stores.directory, acting.principal, org_id=org_id, name=name)

    def rename_group(self, credential: SessionCredential, org_id: int, group_id: int, name: str) -> Group:
        with self.transactions.acting_as(credential) as acting:
            return administration.rename_group(acting.stores.directory, acting.principal, org_id=org_id,
                                               group_id=group_id, name=name)

    def delete_group(self, credential: SessionCredential, org_id: int, group_id: int) -> None:
        with self.transactions.acting_as(credential) as acting:
            administration.delete_group(acting.stores.directory, acting.principal, org_id=org_id, group_id=group_id)

    def add_group_member(self, credential: SessionCredential, org_id: int, group_id: int, user_id: int) -> Group:
        with self.transactions.acting_as(credential) as acting:
            return administration.add_group_member(acting.stores.directory, acting.principal, org_id=org_id,
                                                   group_id=group_id, user_id=user_id)

    def remove_group_member(self, credential: SessionCredential, org_id: int, group_id: int, user_id: int) -> Group:
        with self.transactions.acting_as(credential) as acting:
            return administration.remove_group_member(acting.stores.directory, acting.principal, org_id=org_id,
                                                      group_id=group_id, user_id=user_id)

    # --- invites ------------------------------------------------------------------------------

    def create_invite(self, credential: SessionCredential, org_id: int, *, role: OrgRole, email: str | None,
                      lifetime: timedelta) -> CreatedInvite:
        """Owners/admins (only owners invite owners); the token is returned once and only its hash is kept."""
        token = self.tokens.new_token()
        with self.transactions.acting_as(credential) as acting:
            invite = accounts.create_invite(acting.stores.directory, acting.principal, org_id=org_id,
                                            token_hash=self.tokens.token_hash(token), role=role, email=email,
                                            now=acting.now, lifetime=lifetime)
            return CreatedInvite(invite, invite.state(acting.now), token)

    def invites(self, credential: SessionCredential, org_id: int) -> list[DatedInvite]:
        with self.transactions.acting_as(credential) as acting:
            invites = accounts.list_invites(acting.stores.directory, acting.principal, org_id=org_id)
            return [DatedInvite(i, i.state(acting.now)) for i in invites]

    def revoke_invite(self, credential: SessionCredential, org_id: int, invite_id: int) -> None:
        with self.transactions.acting_as(credential) as acting:
            accounts.revoke_invite(acting.stores.directory, acting.principal, org_id=org_id, invite_id=invite_id,
                                   now=acting.now)

    def accept_invite(self, credential: SessionCredential, token: str) -> JoinedAccount:
        """A signed-in user joins the invite's organisation (an existing higher role is kept)."""
        with self.transactions.acting_as(credential) as acting:
            directory = acting.stores.directory
            invite = accounts.accept_invite(directory, acting.principal, token_hash=self.tokens.token_hash(token),
                                            now=acting.now)
            user, organisations = accounts.account_overview(directory, acting.principal.user_id)
            return JoinedAccount(user, organisations, invite.organisation_id)

    # --- audit log ----------------------------------------------------------------------------

    def audit(self, credential: SessionCredential, org_id: int | None, query: AuditQuery, *, cursor: str | None,
              limit: int) -> tuple[list[AuditEntry], str | None]:
        """An organisation's log (owners/admins), or the server's (``org_id`` None: server admins)."""
        with self.transactions.acting_as(credential) as acting:
            entries, next_cursor = administration.list_audit(acting.stores.directory, acting.principal,
                                                             org_id=org_id, query=query, cursor=cursor, limit=limit)
            return list(entries), next_cursor
