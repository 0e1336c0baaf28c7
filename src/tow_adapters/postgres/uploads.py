"""PgUploadRecords: upload rows, and who may read them decided in SQL (SPEC §5, §2 "One predicate").

``UPLOAD_READABLE`` is the one statement-level rule for every upload read: an attached upload joins its
record and applies ``visible_predicate`` to it; organisation and project logos apply the same predicate
to the organisation's / project's scope; avatars need an organisation both users share; any other
unattached upload its uploader; server admins any. Inactive users read nothing. Nothing is cached, so a
revoked grant hides an attachment on the very next statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore
from tow_adapters.postgres.visibility import PRINCIPAL_PARAM, visible_predicate
from tow_core.errors import Conflict, InvalidInput, NotFound
from tow_core.uploads import NewUpload, Upload, UploadPurpose

_COLUMNS = (
    "u.id, u.organisation_id, u.uploader_id, u.storage_name, u.original_name, u.size_bytes, u.sha256, "
    "u.image_format, u.purpose, u.subject_id, u.record_id, u.created_at"
)
_ME = f"SELECT 1 FROM users me WHERE me.id = :{PRINCIPAL_PARAM} AND me.is_active"


def _scope_visible(kind: str) -> str:
    """The upload's organisation/project scope is readable: the records' predicate on a synthetic row."""
    return (
        f"EXISTS (SELECT 1 FROM (SELECT u.organisation_id, CAST('{kind}' AS text) AS scope_kind, "
        f"u.subject_id AS scope_ref) AS s WHERE {visible_predicate('s')})"
    )


UPLOAD_READABLE = f"""(EXISTS ({_ME}) AND (
    EXISTS ({_ME} AND me.is_server_admin)
    OR (u.record_id IS NOT NULL
        AND EXISTS (SELECT 1 FROM records r WHERE r.id = u.record_id AND {visible_predicate('r')}))
    OR (u.record_id IS NULL AND (
        (u.purpose = 'file' AND u.uploader_id = :{PRINCIPAL_PARAM})
        OR (u.purpose = 'avatar' AND (u.subject_id = :{PRINCIPAL_PARAM} OR EXISTS (
            SELECT 1 FROM memberships mine JOIN memberships theirs ON theirs.organisation_id = mine.organisation_id
            WHERE mine.user_id = :{PRINCIPAL_PARAM} AND theirs.user_id = u.subject_id)))
        OR (u.purpose = 'organisation_logo' AND {_scope_visible('organisation')})
        OR (u.purpose = 'project_logo' AND {_scope_visible('project')})
    ))
))"""

_UNIQUE_VIOLATION = "23505"


def _upload(row: sa.Row) -> Upload:
    (id_, org, uploader, storage, name, size, sha, image, purpose, subject, record, created) = row
    return Upload(id_, org, uploader, storage, name, size, sha, image, UploadPurpose(purpose), subject, record,
                  created)


class PgUploadRecords(SqlStore):

    def _write(self, sql: str, what: str, **params) -> Upload:
        try:
            with self._conn.begin_nested():
                row = self._row(sql, **params)
        except sa.exc.IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) == _UNIQUE_VIOLATION:
                raise Conflict(f"{what}: changed by someone else meanwhile, try again") from exc
            raise InvalidInput(f"{what} is not valid: {exc.orig.diag.message_primary}") from exc
        if row is None:
            raise NotFound("upload not found")
        return _upload(row)

    def add(self, new: NewUpload) -> Upload:
        return self._write(
            "INSERT INTO uploads AS u (organisation_id, uploader_id, storage_name, original_name, size_bytes, "
            "sha256, image_format) VALUES (:org, :uploader, :storage, :name, :size, :sha, :image) "
            f"RETURNING {_COLUMNS}",
            "the upload", org=new.organisation_id, uploader=new.uploader_id, storage=new.storage_name,
            name=new.original_name, size=new.size_bytes, sha=new.sha256, image=new.image_format,
        )

    def readable(self, principal_id: int, upload_id: int) -> Upload | None:
        row = self._row(f"SELECT {_COLUMNS} FROM uploads u WHERE u.id = :id AND {UPLOAD_READABLE}",
                        id=upload_id, **{PRINCIPAL_PARAM: principal_id})
        return _upload(row) if row else None

    def for_update(self, upload_id: int) -> Upload | None:
        row = self._row(f"SELECT {_COLUMNS} FROM uploads u WHERE u.id = :id FOR UPDATE", id=upload_id)
        return _upload(row) if row else None

    def attachments_readable(self, principal_id: int, record_id: int) -> list[Upload]:
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM uploads u WHERE u.record_id = :record AND {UPLOAD_READABLE} ORDER BY u.id",
            record=record_id, **{PRINCIPAL_PARAM: principal_id},
        )
        return [_upload(row) for row in rows]

    def attach(self, upload_id: int, record_id: int | None) -> Upload:
        return self._write(f"UPDATE uploads AS u SET record_id = :record WHERE u.id = :id RETURNING {_COLUMNS}",
                           "the attachment", id=upload_id, record=record_id)

    def set_purpose(self, upload_id: int, purpose: UploadPurpose, subject_id: int | None) -> Upload:
        return self._write(
            f"UPDATE uploads AS u SET purpose = :purpose, subject_id = :subject WHERE u.id = :id RETURNING {_COLUMNS}",
            f"the {purpose.value.replace('_', ' ')}", id=upload_id, purpose=purpose.value, subject=subject_id,
        )

    def current_image(self, purpose: UploadPurpose, subject_id: int) -> Upload | None:
        row = self._row(f"SELECT {_COLUMNS} FROM uploads u WHERE u.purpose = :purpose AND u.subject_id = :subject "
                        "FOR UPDATE", purpose=purpose.value, subject=subject_id)
        return _upload(row) if row else None

    def readable_images(self, principal_id: int, wanted: Mapping[UploadPurpose, Iterable[int]]
                        ) -> dict[UploadPurpose, dict[int, int]]:
        asked = {purpose: set(ids) for purpose, ids in wanted.items()}
        found: dict[UploadPurpose, dict[int, int]] = {purpose: {} for purpose in asked}
        subjects = sorted(set().union(*asked.values())) if asked else []
        if not subjects:
            return found
        # Arrays, not expanding INs: one statement text for every page's frame (avatar, logo, project logos),
        # built and compiled once; the few rows of other (purpose, subject) pairs are dropped below.
        rows = self._rows(f"SELECT u.purpose, u.subject_id, u.id FROM uploads u "
                          f"WHERE u.purpose = ANY(CAST(:purposes AS text[])) "
                          f"AND u.subject_id = ANY(CAST(:subjects AS bigint[])) AND {UPLOAD_READABLE}",
                          purposes=sorted(p.value for p in asked), subjects=subjects,
                          **{PRINCIPAL_PARAM: principal_id})
        for purpose, subject, upload_id in rows:
            if subject in asked[UploadPurpose(purpose)]:
                found[UploadPurpose(purpose)][subject] = upload_id
        return found

    def delete(self, upload_id: int) -> None:
        self._conn.execute(sa.text("DELETE FROM uploads WHERE id = :id"), {"id": upload_id})

    def storage_names(self) -> set[str]:
        return {row[0] for row in self._rows("SELECT storage_name FROM uploads")}
