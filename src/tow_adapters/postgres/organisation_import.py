"""PgOrganisationImport: restores an organisation export (docs/export-format.md) on the caller's
transaction — everything or, on the first problem, nothing (the caller's transaction rolls back).

The file is streamed (``tow_adapters.json_stream``), never loaded whole: memory holds the small
sections (people, members, groups, projects, sequences), the set of display IDs and the id of each
record, and one batch of ``_BATCH`` records at a time. It is read three times (the file must be
seekable):
1. every member and item is decoded and type-checked (msgspec); the small sections are kept and
   cross-checked; the display IDs are collected. The first problem is reported with its JSON path.
2. the organisation, people, members, groups and projects are inserted; then each record and memory
   diff is cross-checked (scope, people, fields, references, links all point at what the file holds)
   and inserted, batch by batch.
3. what points at records — parents, references, revisions, comments, activity, links — is inserted
   once every record has its id.
Deployment ids are new; display IDs, record numbers, sequences, versions and timestamps are kept, so
re-exporting the imported organisation yields the same document apart from ``exported_at``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import sqlalchemy as sa

from tow_adapters.export_format import (
    HEADER_KEYS,
    SECTIONS,
    USER_ID_FIELDS,
    AttachmentIn,
    ExportHeader,
    GroupIn,
    MemberIn,
    MemoryDiffIn,
    PersonIn,
    ProjectIn,
    RecordIn,
    ScopeIn,
    SequenceIn,
    decode_at,
    decode_header,
)
from tow_adapters.json_stream import read_object
from tow_core.errors import Conflict, InvalidInput
from tow_core.identity import normalise_email
from tow_core.imports import IMPORT_CHECK_STAGE, IMPORT_STAGE, ImportReport
from tow_core.progress import Progress, no_progress
from tow_core.records import PREFIXES, TICKET_PREFIX, TRANSITIONS, RecordType, validated_fields
from tow_core.uploads import RasterImageInspector, UploadStore, sanitise_filename

# Record fields that name other rows: in a file they hold a display ID or an email, in the database an id.
_RECORD_ID_FIELDS = ("parent_id",)
_USER_ID_FIELDS = USER_ID_FIELDS
_BATCH = 1000
# One record with its whole history: far above anything TOW writes, and what bounds memory per item.
MAX_ITEM_BYTES = 64 * 1024 * 1024
_STREAMED = frozenset({"records", "memory_diffs", "attachments"})


def _refuse(path: str, reason: str) -> InvalidInput:
    return InvalidInput(f"{path}: {reason}", field=path)


def _display_id_parts(display_id: str) -> tuple[str, int]:
    prefix, number = display_id.rsplit("-", 1)
    return prefix, int(number)


def _batches(items: Iterable[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _members(file: BinaryIO) -> Iterator[tuple[str, bytes | Iterator[bytes]]]:
    file.seek(0)
    return read_object(file, frozenset(SECTIONS), max_item_bytes=MAX_ITEM_BYTES)


def _section(file: BinaryIO, name: str) -> Iterator[tuple[str, Any]]:
    """(path, decoded item) of one array section, streamed (pass 2 and 3: already type-checked)."""
    for key, value in _members(file):
        if key == name and not isinstance(value, bytes):
            for index, raw in enumerate(value):
                path = f"$.{name}[{index}]"
                yield path, decode_at(raw, SECTIONS[name], path)
            return


class _Scan:
    """Pass 1: decode and type-check everything; keep the small sections and the display IDs."""

    def __init__(self, file: BinaryIO, progress: Progress = no_progress) -> None:
        self._file, self._progress = file, progress
        self._size = file.seek(0, io.SEEK_END)
        self.small: dict[str, list[Any]] = {}
        self.display_ids: set[str] = set()
        self.counts: Counter[str] = Counter()
        raw_header: dict[str, bytes] = {}
        for key, value in _members(file):
            if key in raw_header or key in self.small or key in self.counts:
                raise _refuse(f"$.{key}", "appears twice")
            if key in HEADER_KEYS and isinstance(value, bytes):
                raw_header[key] = value
            elif key in SECTIONS and not isinstance(value, bytes):
                self._section(key, value)
            elif key in SECTIONS:
                decode_at(value, list[SECTIONS[key]], f"$.{key}")  # not an array: say what it is
            else:
                raise _refuse("$", f"Object contains unknown field `{key}`")
        self.header: ExportHeader = decode_header(raw_header)
        for key in SECTIONS:
            if key not in self.small and key not in self.counts and key not in _STREAMED:
                raise _refuse("$", f"Object missing required field `{key}`")
        for key in _STREAMED:
            if key not in self.counts:
                raise _refuse("$", f"Object missing required field `{key}`")
        progress(IMPORT_CHECK_STAGE, self._size, self._size, "bytes")

    def _section(self, key: str, items: Iterator[bytes]) -> None:
        kept: list[Any] = []
        self.counts[key] = 0
        for index, raw in enumerate(items):
            path = f"$.{key}[{index}]"
            item = decode_at(raw, SECTIONS[key], path)
            self.counts[key] += 1
            self._progress(IMPORT_CHECK_STAGE, min(self._file.tell(), self._size), self._size, "bytes")
            if key == "records":
                if item.display_id in self.display_ids:
                    raise _refuse(f"{path}.display_id", f"{item.display_id!r} appears twice")
                self.display_ids.add(item.display_id)
            elif key not in _STREAMED:
                kept.append(item)
        if key not in _STREAMED:
            self.small[key] = kept


class _Check:
    """Cross-reference checks, each failing with the offending path."""

    def __init__(self, scan: _Scan) -> None:
        self.people: list[PersonIn] = scan.small["people"]
        self.members: list[MemberIn] = scan.small["members"]
        self.groups: list[GroupIn] = scan.small["groups"]
        self.projects: list[ProjectIn] = scan.small["projects"]
        self.sequence_list: list[SequenceIn] = scan.small["sequences"]
        self._people = set(self._unique("$.people", (p.email for p in self.people), "email"))
        self._groups = set(self._unique("$.groups", (g.name.lower() for g in self.groups), "name"))
        self._projects = set(self._unique("$.projects", (p.key for p in self.projects), "key"))
        self.sequences = dict(zip(self._unique("$.sequences", (s.prefix for s in self.sequence_list), "prefix"),
                                  (s.last_number for s in self.sequence_list), strict=True))
        self._records = scan.display_ids

    @staticmethod
    def _unique(path: str, values: Iterable[str], key: str) -> list[str]:
        seen: list[str] = []
        known: set[str] = set()
        for index, value in enumerate(values):
            if value in known:
                raise _refuse(f"{path}[{index}]" + (f".{key}" if key else ""), f"{value!r} appears twice")
            known.add(value)
            seen.append(value)
        return seen

    def person(self, path: str, email: str | None) -> None:
        if email is not None and email not in self._people:
            raise _refuse(path, f"{email!r} is not in $.people")

    def small_sections(self) -> None:
        for index, person in enumerate(self.people):
            path = f"$.people[{index}].email"
            try:
                if normalise_email(person.email) != person.email:
                    raise _refuse(path, "emails are stored lower-case and trimmed")
            except InvalidInput as exc:
                raise _refuse(path, exc.message) from exc
        for index, member in enumerate(self.members):
            self.person(f"$.members[{index}].user", member.user)
        self._unique("$.members", (m.user for m in self.members), "user")
        if not any(m.role == "owner" for m in self.members):
            raise _refuse("$.members", "an organisation needs at least one owner")
        for index, group in enumerate(self.groups):
            for position, email in enumerate(group.members):
                self.person(f"$.groups[{index}].members[{position}]", email)
            self._unique(f"$.groups[{index}].members", group.members, "")
        for index, project in enumerate(self.projects):
            self._project(f"$.projects[{index}]", project)

    def attachment(self, path: str, attachment: AttachmentIn) -> None:
        if attachment.record not in self._records:
            raise _refuse(f"{path}.record", f"{attachment.record} is not in $.records")
        self.person(f"{path}.uploader", attachment.uploader)
        if sanitise_filename(attachment.original_name) != attachment.original_name:
            raise _refuse(f"{path}.original_name", "not a name TOW would have kept (unsafe characters)")

    def memory_diff(self, path: str, diff: MemoryDiffIn) -> None:
        self._scope(f"{path}.scope", diff.scope)
        self.person(f"{path}.author", diff.author)
        self.person(f"{path}.reviewer", diff.reviewer)
        if (diff.status == "pending") != (diff.decided_at is None):
            raise _refuse(f"{path}.decided_at", "set exactly when the diff is no longer pending")

    def _project(self, path: str, project) -> None:
        self.person(f"{path}.lead", project.lead)
        holders: set[tuple[str, str]] = set()
        for position, grant in enumerate(project.grants):
            grant_path = f"{path}.grants[{position}]"
            if (grant.user is None) == (grant.group is None):
                raise _refuse(grant_path, "a grant names exactly one of user and group")
            if grant.user is not None:
                self.person(f"{grant_path}.user", grant.user)
            elif grant.group is not None and grant.group.lower() not in self._groups:
                raise _refuse(f"{grant_path}.group", f"{grant.group!r} is not in $.groups")
            holder = ("user", grant.user) if grant.user is not None else ("group", str(grant.group).lower())
            if holder in holders:
                raise _refuse(grant_path, "a second grant for the same holder")
            holders.add(holder)

    def _scope(self, path: str, scope: ScopeIn) -> None:
        named = {"group": scope.group, "project": scope.project, "user": scope.user}
        for kind, value in named.items():
            if (value is not None) != (kind == scope.kind):
                raise _refuse(f"{path}.{kind}", f"a {scope.kind} scope " +
                              ("names its " + kind if kind == scope.kind else f"has no {kind}"))
        if scope.kind == "user":
            raise _refuse(f"{path}.kind", "private records are never part of an organisation export")
        if scope.kind == "group" and str(scope.group).lower() not in self._groups:
            raise _refuse(f"{path}.group", f"{scope.group!r} is not in $.groups")
        if scope.kind == "project" and scope.project not in self._projects:
            raise _refuse(f"{path}.project", f"{scope.project!r} is not in $.projects")

    def record(self, path: str, record: RecordIn) -> None:
        prefix, number = _display_id_parts(record.display_id)
        record_type = RecordType(record.type)
        expected = PREFIXES.get(record_type)
        if expected is not None and prefix != expected:
            raise _refuse(f"{path}.display_id", f"a {record.type} is numbered {expected}-n")
        if record_type is RecordType.TICKET and prefix != TICKET_PREFIX and prefix not in self._projects:
            raise _refuse(f"{path}.display_id", f"tickets are numbered {TICKET_PREFIX}-n or with a project key")
        if number > self.sequences.get(prefix, 0):
            raise _refuse(f"{path}.display_id", f"number above the last one $.sequences gives for {prefix}")
        self._scope(f"{path}.scope", record.scope)
        if record.status not in TRANSITIONS[record_type]:
            raise _refuse(f"{path}.status", f"{record.status!r} is not a status of a {record.type}")
        self.person(f"{path}.author", record.author)
        self._fields(f"{path}.fields", record)
        for position, target in enumerate(record.references):
            self._target(f"{path}.references[{position}]", target, record.display_id)
        for position, revision in enumerate(record.revisions):
            self.person(f"{path}.revisions[{position}].replaced_by", revision.replaced_by)
        for position, comment in enumerate(record.comments):
            self.person(f"{path}.comments[{position}].author", comment.author)
        for position, entry in enumerate(record.activity):
            self.person(f"{path}.activity[{position}].actor", entry.actor)
        for position, link in enumerate(record.links):
            self._target(f"{path}.links[{position}].target", link.target, record.display_id)
            self.person(f"{path}.links[{position}].created_by", link.created_by)
        if record.sources and record_type is not RecordType.SNAPSHOT:
            raise _refuse(f"{path}.sources", "only snapshots have pinned sources")
        for position, source in enumerate(record.sources):
            self._target(f"{path}.sources[{position}].record", source.record, record.display_id)

    def _target(self, path: str, target: str, source: str) -> None:
        if target not in self._records:
            raise _refuse(path, f"{target} is not in $.records")
        if target == source:
            raise _refuse(path, "a record cannot point at itself")

    def _fields(self, path: str, record: RecordIn) -> None:
        as_ids = dict(record.fields)
        if "memory_diff_id" in as_ids:  # an id of the exporting server's: never written in a file
            raise _refuse(f"{path}.memory_diff_id", "is set when a memory diff is approved; a file does not carry it")
        for name in _RECORD_ID_FIELDS:
            value = as_ids.get(name)
            if value is not None:
                if not isinstance(value, str) or value not in self._records:
                    raise _refuse(f"{path}.{name}", "must be the display ID of a record in $.records")
                as_ids[name] = 1  # stands in for the id it will get
        for name in _USER_ID_FIELDS:
            value = as_ids.get(name)
            if value is not None:
                if not isinstance(value, str):
                    raise _refuse(f"{path}.{name}", "must be the email of someone in $.people")
                self.person(f"{path}.{name}", value)
                as_ids[name] = 1
        try:
            validated_fields(RecordType(record.type), as_ids)
        except InvalidInput as exc:
            raise _refuse(f"{path}.{exc.field}" if exc.field else path, exc.message) from exc


class _Files:
    """Attachment contents on their way into the upload store; remembers what it wrote."""

    def __init__(self, store: UploadStore | None, images: RasterImageInspector | None, written: list[str]) -> None:
        self._store, self._images, self.written = store, images, written

    def store(self, path: str, attachment: AttachmentIn) -> str:
        try:
            content = base64.b64decode(attachment.content_base64 or "", validate=True)
        except binascii.Error as exc:
            raise _refuse(f"{path}.content_base64", "not valid base64") from exc
        if len(content) != attachment.size_bytes:
            raise _refuse(f"{path}.size_bytes", f"the content has {len(content)} bytes")
        if hashlib.sha256(content).hexdigest() != attachment.sha256:
            raise _refuse(f"{path}.sha256", "does not match the content")
        claimed = attachment.image_format  # shown inline when set: it must really be that image
        if claimed is not None and self._images is not None and (
                self._images.raster_format(io.BytesIO(content)) != claimed):
            raise _refuse(f"{path}.image_format", f"the content is not a {claimed} image")
        if self._store is None:
            raise _refuse(path, "this deployment has no upload store to restore attachment contents into")
        stored = self._store.put([content], max_bytes=len(content))
        self.written.append(stored.storage_name)
        return stored.storage_name


class _Steps:
    """Pass 2 and 3 as one count of items for a progress display: every record twice, diffs, attachments."""

    def __init__(self, progress: Progress, scan: _Scan) -> None:
        self._progress, self.done = progress, 0
        self._total = 2 * scan.counts["records"] + scan.counts["memory_diffs"] + scan.counts["attachments"]
        progress(IMPORT_STAGE, 0, self._total, "items")

    def __call__(self, items: int) -> None:
        self.done += items
        self._progress(IMPORT_STAGE, self.done, self._total, "items")


class PgOrganisationImport:
    def __init__(self, connection: sa.Connection) -> None:
        self._conn = connection

    def _exec(self, sql: str, params: Any = None) -> sa.CursorResult:
        return self._conn.execute(sa.text(sql), params if params is not None else {})

    def _many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._conn.execute(sa.text(sql), rows)

    def restore(self, file: BinaryIO, *, upload_store: UploadStore | None = None,
                images: RasterImageInspector | None = None, progress: Progress = no_progress) -> ImportReport:
        scan = _Scan(file, progress)
        check = _Check(scan)
        check.small_sections()
        written: list[str] = []
        try:
            return self._insert(file, scan, check, _Files(upload_store, images, written), _Steps(progress, scan))
        except sa.exc.IntegrityError as exc:  # a constraint the checks above do not cover
            reason = str(exc.orig).splitlines()[0] if exc.orig else "a database constraint"
            raise InvalidInput(f"$: refused by the database: {reason}", field="$") from exc
        finally:
            if written and sys.exc_info()[0] is not None:  # the transaction rolls back: so do the files
                for storage_name in written:
                    upload_store.delete(storage_name)  # type: ignore[union-attr]

    def _insert(self, file: BinaryIO, scan: _Scan, check: _Check, files: _Files, step: _Steps) -> ImportReport:
        org = scan.header.organisation
        self._exec("LOCK TABLE organisations IN SHARE ROW EXCLUSIVE MODE")  # two imports of one name
        if self._exec("SELECT 1 FROM organisations WHERE lower(name) = lower(:n)", {"n": org.name}).first():
            raise Conflict(f"an organisation named {org.name!r} already exists: an import never merges",
                           field="$.organisation.name")
        counts: Counter[str] = Counter()
        users = self._people(check.people, counts)
        org_id = self._exec(
            "INSERT INTO organisations (name, workflow_mode, created_at, require_second_reviewer) "
            "VALUES (:n, :w, :c, :r) RETURNING id",
            {"n": org.name, "w": org.workflow_mode, "c": org.created_at, "r": org.require_second_reviewer},
        ).scalar_one()
        self._many("INSERT INTO memberships (organisation_id, user_id, role, created_at) VALUES (:o, :u, :r, :c)",
                   [{"o": org_id, "u": users[m.user], "r": m.role, "c": m.joined_at} for m in check.members])
        counts["members"] = len(check.members)
        groups = self._groups(check.groups, org_id, users)
        counts["groups"] = len(groups)
        projects = self._projects(check.projects, org_id, users, groups, counts)
        ids = self._records(file, check, org_id, users, groups, projects, counts, step)
        self._memory_diffs(file, check, org_id, users, groups, projects, counts, step)
        self._history(file, org_id, users, ids, counts, step)
        self._attachments(file, check, org_id, users, ids, files, counts, step)
        self._many("INSERT INTO record_sequences (organisation_id, prefix, last_number) VALUES (:o, :p, :n)",
                   [{"o": org_id, "p": s.prefix, "n": s.last_number} for s in check.sequence_list])
        for section in ("attachments", "attachments_without_content"):
            counts.setdefault(section, 0)
        for section in ("grants", "memory_diffs", "references", "revisions", "comments", "activity", "links",
                        "snapshot_sources"):
            counts.setdefault(section, 0)
        return ImportReport(org_id, org.name, dict(counts))

    def _people(self, people: list[PersonIn], counts: Counter[str]) -> dict[str, int]:
        emails = [p.email for p in people]
        existing = dict(self._exec("SELECT email, id FROM users WHERE email = ANY(:e)", {"e": emails}).all())
        # No password: an imported person signs in once an operator sets one (README "Exports and import").
        self._many("INSERT INTO users (email, display_name, password_hash, is_active) VALUES (:e, :d, NULL, :a)",
                   [{"e": p.email, "d": p.display_name, "a": p.active} for p in people if p.email not in existing])
        counts["people_matched"] = len(existing)
        counts["people_created"] = len(emails) - len(existing)
        return dict(self._exec("SELECT email, id FROM users WHERE email = ANY(:e)", {"e": emails}).all())

    def _groups(self, groups_in: list[GroupIn], org_id: int, users: dict[str, int]) -> dict[str, int]:
        groups: dict[str, int] = {}
        for group in groups_in:
            groups[group.name.lower()] = self._exec(
                "INSERT INTO groups (organisation_id, name, created_at) VALUES (:o, :n, :c) RETURNING id",
                {"o": org_id, "n": group.name, "c": group.created_at},
            ).scalar_one()
            self._many("INSERT INTO group_members (group_id, user_id) VALUES (:g, :u)",
                       [{"g": groups[group.name.lower()], "u": users[e]} for e in group.members])
        return groups

    def _projects(self, projects_in: list[ProjectIn], org_id: int, users: dict[str, int], groups: dict[str, int],
                  counts: Counter[str]) -> dict[str, int]:
        projects: dict[str, int] = {}
        for project in projects_in:
            projects[project.key] = self._exec(
                "INSERT INTO projects (organisation_id, key, name, description, lead_user_id, visibility, status, "
                "created_at) VALUES (:o, :k, :n, :d, :l, :v, :s, :c) RETURNING id",
                {"o": org_id, "k": project.key, "n": project.name, "d": project.description,
                 "l": users.get(project.lead) if project.lead else None, "v": project.visibility,
                 "s": project.status, "c": project.created_at},
            ).scalar_one()
            self._many(
                "INSERT INTO project_grants (project_id, user_id, group_id, role, created_at) "
                "VALUES (:p, :u, :g, :r, :c)",
                [{"p": projects[project.key], "u": users[g.user] if g.user else None,
                  "g": groups[g.group.lower()] if g.group else None, "r": g.role, "c": g.created_at}
                 for g in project.grants],
            )
            counts["grants"] += len(project.grants)
        counts["projects"] = len(projects)
        return projects

    @staticmethod
    def _scope_ref(scope: ScopeIn, org_id: int, groups: dict[str, int], projects: dict[str, int]) -> int:
        if scope.kind == "group":
            return groups[str(scope.group).lower()]
        if scope.kind == "project":
            return projects[str(scope.project)]
        return org_id

    def _records(self, file: BinaryIO, check: _Check, org_id: int, users: dict[str, int], groups: dict[str, int],
                 projects: dict[str, int], counts: Counter[str], step: _Steps) -> dict[str, int]:
        """Pass 2: check and insert every record, batch by batch; returns display ID -> new id."""
        def stored_fields(record: RecordIn) -> str:
            fields = dict(record.fields)
            for name in _RECORD_ID_FIELDS:
                if name in fields:
                    fields[name] = None  # set in pass 3, once every record has its id
            for name in _USER_ID_FIELDS:
                if fields.get(name) is not None:
                    fields[name] = users[fields[name]]
            return json.dumps(fields)

        for batch in _batches(_section(file, "records")):
            rows = []
            for path, record in batch:
                check.record(path, record)
                prefix, number = _display_id_parts(record.display_id)
                rows.append({
                    "o": org_id, "t": record.type, "p": prefix, "n": number, "k": record.scope.kind,
                    "ref": self._scope_ref(record.scope, org_id, groups, projects), "title": record.title,
                    "body": record.body, "s": record.status, "a": users.get(record.author) if record.author else None,
                    "f": stored_fields(record), "c": record.created_at, "u": record.updated_at, "v": record.version,
                })
            self._many(
                "INSERT INTO records (organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, "
                "status, author_id, fields, created_at, updated_at, version) VALUES (:o, :t, :p, :n, :k, :ref, "
                ":title, :body, :s, :a, CAST(:f AS jsonb), :c, :u, :v)",
                rows,
            )
            counts["records"] += len(rows)
            step(len(rows))
        return {f"{p}-{n}": i for i, p, n in self._exec(
            "SELECT id, prefix, number FROM records WHERE organisation_id = :o", {"o": org_id}).all()}

    def _history(self, file: BinaryIO, org_id: int, users: dict[str, int], ids: dict[str, int],
                 counts: Counter[str], step: _Steps) -> None:
        """Pass 3: everything that points at records."""
        def user(email: str | None) -> int | None:
            return users[email] if email is not None else None

        for batch in _batches(_section(file, "records")):
            parents, references, revisions, comments, activity, links, sources = [], [], [], [], [], [], []
            for _, record in batch:
                rid = ids[record.display_id]
                for name in _RECORD_ID_FIELDS:
                    if record.fields.get(name) is not None:
                        parents.append({"id": rid, "name": name, "v": json.dumps(ids[record.fields[name]])})
                references += [{"s": rid, "t": ids[t]} for t in record.references]
                revisions += [{"r": rid, "v": x.version, "t": x.title, "b": x.body, "s": x.saved_at,
                               "by": user(x.replaced_by), "at": x.replaced_at} for x in record.revisions]
                comments += [{"r": rid, "a": user(x.author), "b": x.body, "c": x.created_at, "u": x.updated_at}
                             for x in record.comments]
                activity += [{"r": rid, "a": user(x.actor), "at": x.at, "f": x.field,
                              "old": json.dumps(x.old_value), "new": json.dumps(x.new_value), "ai": x.ai_applied}
                             for x in record.activity]
                links += [{"o": org_id, "s": rid, "t": ids[x.target], "k": x.kind, "by": user(x.created_by),
                           "c": x.created_at} for x in record.links]
                sources += [{"s": rid, "o": org_id, "t": ids[x.record], "v": x.version} for x in record.sources]
            self._many("UPDATE records SET fields = jsonb_set(fields, ARRAY[:name], CAST(:v AS jsonb)) "
                       "WHERE id = :id", parents)
            self._many("INSERT INTO record_references (source_id, target_id) VALUES (:s, :t)", references)
            self._many("INSERT INTO doc_revisions (record_id, version, title, body, saved_at, replaced_by, "
                       "replaced_at) VALUES (:r, :v, :t, :b, :s, :by, :at)", revisions)
            self._many("INSERT INTO ticket_comments (record_id, author_id, body, created_at, updated_at) "
                       "VALUES (:r, :a, :b, :c, :u)", comments)
            self._many("INSERT INTO ticket_activity (record_id, actor_id, at, field, old_value, new_value, "
                       "ai_applied) VALUES (:r, :a, :at, :f, CAST(:old AS jsonb), CAST(:new AS jsonb), :ai)",
                       activity)
            self._many("INSERT INTO ticket_links (organisation_id, source_id, target_id, kind, created_by, "
                       "created_at) VALUES (:o, :s, :t, :k, :by, :c)", links)
            self._many("INSERT INTO snapshot_sources (snapshot_record_id, organisation_id, source_record_id, "
                       "source_version) VALUES (:s, :o, :t, :v)", sources)
            counts.update(references=len(references), revisions=len(revisions), comments=len(comments),
                          activity=len(activity), links=len(links), snapshot_sources=len(sources))
            step(len(batch))

    def _attachments(self, file: BinaryIO, check: _Check, org_id: int, users: dict[str, int],
                     ids: dict[str, int], files: _Files, counts: Counter[str], step: _Steps) -> None:
        """Each attachment's content, once checked, goes to the upload store; then its row."""
        for path, attachment in _section(file, "attachments"):
            step(1)
            check.attachment(path, attachment)
            if attachment.content_base64 is None:
                counts["attachments_without_content"] += 1
                continue
            stored = files.store(path, attachment)
            self._exec(
                "INSERT INTO uploads (organisation_id, uploader_id, storage_name, original_name, size_bytes, sha256, "
                "image_format, purpose, record_id, created_at) VALUES (:o, :u, :s, :n, :size, :sha, :img, 'file', "
                ":r, :c)",
                {"o": org_id, "u": users[attachment.uploader] if attachment.uploader else None, "s": stored,
                 "n": attachment.original_name, "size": attachment.size_bytes, "sha": attachment.sha256,
                 "img": attachment.image_format, "r": ids[attachment.record], "c": attachment.created_at},
            )
            counts["attachments"] += 1

    def _memory_diffs(self, file: BinaryIO, check: _Check, org_id: int, users: dict[str, int],
                      groups: dict[str, int], projects: dict[str, int], counts: Counter[str], step: _Steps) -> None:
        for batch in _batches(_section(file, "memory_diffs")):
            for path, diff in batch:
                check.memory_diff(path, diff)
            self._many(
                "INSERT INTO memory_diffs (organisation_id, scope_kind, scope_ref, source, source_display_id, "
                "rationale, author_id, operations, status, reviewer_id, decided_at, review_note, outcomes, "
                "created_at) VALUES (:o, :k, :ref, :src, :sid, :why, :a, CAST(:ops AS jsonb), :s, :rev, :d, "
                ":note, CAST(:out AS jsonb), :c)",
                [{"o": org_id, "k": d.scope.kind, "ref": self._scope_ref(d.scope, org_id, groups, projects),
                  "src": d.source, "sid": d.source_display_id, "why": d.rationale,
                  "a": users[d.author] if d.author else None, "ops": json.dumps(d.operations), "s": d.status,
                  "rev": users[d.reviewer] if d.reviewer else None, "d": d.decided_at, "note": d.review_note,
                  "out": json.dumps(d.outcomes), "c": d.created_at} for _, d in batch],
            )
            counts["memory_diffs"] += len(batch)
            step(len(batch))
