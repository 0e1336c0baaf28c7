"""Uploads: file metadata, record attachments, avatars and logos (issue 5, SPEC §5).

Revision ID: 0007
Revises: 0006

The bytes live in the upload store (``uploads.upload_storage_path``); a row here is added only after
its file is durable, so no row ever names a missing file. ``record_id`` cascades: a deleted record
takes its attachments' rows with it (their files become orphans for ``tow uploads verify --repair``).
An avatar/logo is an upload with a purpose and the subject it depicts; one per subject.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE uploads (
            id bigserial PRIMARY KEY,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            uploader_id bigint REFERENCES users(id) ON DELETE SET NULL,
            storage_name text NOT NULL UNIQUE CHECK (storage_name ~ '^[0-9a-f]{32}$'),
            original_name text NOT NULL CHECK (length(original_name) BETWEEN 1 AND 255),
            size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
            sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            image_format text CHECK (image_format IN ('png', 'jpeg', 'gif', 'webp')),
            purpose text NOT NULL DEFAULT 'file'
                CHECK (purpose IN ('file', 'avatar', 'organisation_logo', 'project_logo')),
            subject_id bigint,
            record_id bigint REFERENCES records(id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            -- only plain files are attached; images of a subject name it and are verified images
            CHECK (purpose = 'file' OR (record_id IS NULL AND subject_id IS NOT NULL AND image_format IS NOT NULL)),
            CHECK (purpose <> 'file' OR subject_id IS NULL)
        );
        CREATE INDEX uploads_record_idx ON uploads (record_id) WHERE record_id IS NOT NULL;
        CREATE INDEX uploads_uploader_idx ON uploads (uploader_id);
        CREATE UNIQUE INDEX uploads_one_image_per_subject ON uploads (purpose, subject_id) WHERE purpose <> 'file';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE uploads")
