"""What every signed-in page of one organisation shows around its content: who is signed in, their
organisations, this organisation and their role in it, the projects they read (and the one picked), the
organisation's groups (for naming scopes and offering them in forms), the images they may see, how many
items wait in their inbox (``tow_core.inbox``: four indexed counting queries, in the picked project's scope)
and the top of the readable doc tree for the sidebar (``docs.doc_branches``; sub-pages load on demand).

A page's use case builds it in the same unit of work as the content (``Framed``), so frame and content
agree and a page costs one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tow_core import accounts, administration, attachments, docs, inbox
from tow_core.access import OrgRole
from tow_core.errors import NotFound
from tow_core.identity import Group, Organisation, Project, User
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.uploads import UploadPurpose

T = TypeVar("T")
SIDEBAR_DOCS = 30  # top-level docs the sidebar lists; the Docs page has them all


@dataclass(frozen=True)
class Frame:
    user: User
    memberships: list[tuple[Organisation, OrgRole]]
    org: Organisation
    role: OrgRole
    projects: list[Project]  # the ones the user reads
    project: Project | None  # the picked project; None means "All projects"
    groups: list[Group]  # the organisation's groups (every member sees them)
    own_group_ids: frozenset[int]  # the groups the user is in (where they may file group records)
    # Upload ids of the images this user may see (absent: none set).
    avatar_id: int | None = None
    logo_id: int | None = None
    project_logos: Mapping[int, int] = field(default_factory=dict)
    inbox_count: int = 0  # what waits in the user's inbox, in the picked project's scope
    notification_count: int = 0  # the user's unread notifications in this organisation (one indexed count)
    doc_roots: tuple[docs.Branch, ...] = ()  # the sidebar's doc tree: its top, at most SIDEBAR_DOCS
    more_docs: bool = False  # the top has more docs than the sidebar lists


@dataclass(frozen=True)
class Framed(Generic[T]):
    """A page's content with its frame, read in one unit of work."""

    frame: Frame
    content: T


def frame_of(acting: Acting, org_id: int, project_key: str | None) -> Frame:
    """The frame for ``org_id``; NotFound unless the user is a member, or for a project they cannot read
    (an unknown project and an invisible one look the same)."""
    directory, principal = acting.stores.directory, acting.principal
    organisation = administration.get_organisation(directory, principal, org_id=org_id)
    user = accounts.current_user(directory, principal)
    projects = administration.list_projects(directory, principal, org_id=org_id)
    picked = picked_project(projects, project_key)

    images = attachments.visible_images_of(principal, acting.stores.uploads, {
        UploadPurpose.AVATAR: [user.id], UploadPurpose.ORGANISATION_LOGO: [org_id],
        UploadPurpose.PROJECT_LOGO: [p.id for p in projects]})
    roots = docs.doc_branches(acting.workspace(org_id), acting.stores.history.tree, picked.key if picked else None,
                              limit=SIDEBAR_DOCS + 1)
    return Frame(user, accounts.own_organisations(directory, principal), organisation, principal.org_roles[org_id],
                 projects, picked, administration.list_groups(directory, principal, org_id=org_id),
                 frozenset(principal.group_ids),
                 avatar_id=images[UploadPurpose.AVATAR].get(user.id),
                 logo_id=images[UploadPurpose.ORGANISATION_LOGO].get(org_id),
                 project_logos=images[UploadPurpose.PROJECT_LOGO],
                 inbox_count=inbox.count(inbox_desk(acting), inbox_within(acting, org_id, picked, projects)).total,
                 notification_count=acting.stores.notifications.count_unread(user.id, org_id),
                 doc_roots=tuple(roots[:SIDEBAR_DOCS]), more_docs=len(roots) > SIDEBAR_DOCS)


def picked_project(readable: list[Project], project_key: str | None) -> Project | None:
    """The project ``project_key`` picks among those the user reads (None for "All projects"); NotFound for any
    other, so an unknown project and an invisible one look the same."""
    if not project_key:
        return None
    picked = next((p for p in readable if p.key == project_key.upper()), None)
    if picked is None:
        raise NotFound(f"project {project_key} not found")
    return picked


def inbox_desk(acting: Acting) -> inbox.InboxDesk:
    stores = acting.stores
    return inbox.InboxDesk(stores.records, stores.memory_diffs, stores.conversations, stores.agent_runs)


def inbox_within(acting: Acting, org_id: int, picked: Project | None, readable: list[Project]) -> inbox.Within:
    return inbox.within(acting.principal, org_id, picked.id if picked else None, [p.id for p in readable])


@dataclass(frozen=True)
class FrameUseCases:
    """For pages that show only the frame (a form with nothing else read)."""

    transactions: Transactions

    def frame(self, credential: Credential, org_id: int, project_key: str | None) -> Frame:
        with self.transactions.acting_as(credential) as acting:
            return frame_of(acting, org_id, project_key)
