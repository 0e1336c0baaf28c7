"""The embedding pipeline (SPEC §6, §7, §11): chunk records, embed them, keep the vectors current.

Rules:
- Work comes from an outbox the database fills in the same transaction as each record change; a
  worker claims a batch with a lease (``FOR UPDATE SKIP LOCKED`` in the adapter), so several workers
  never embed the same record at the same time, and a crashed worker's batch is claimed again when
  its lease ends. A failed batch is retried with exponential backoff, at most ``MAX_ATTEMPTS`` times.
- Vectors are written only for the record's *current* text: if the text changed while it was being
  embedded, the vectors are dropped and the newer outbox entry does the work.
- Visibility is never copied into the vectors: search joins the record row, so deleting, moving or
  revoking takes effect in the transaction that does it, whatever the worker is doing.
- Docs are cut into overlapping chunks, each embedded with the doc's title in front; other records
  are embedded as title + body. Sizes are counted in words as a stand-in for tokens (English text
  averages ~1.3 tokens per word): chunks of ``CHUNK_WORDS`` (~400 tokens) overlapping by
  ``OVERLAP_WORDS`` (~65 tokens), well inside the embedding model's 8,191-token input limit.
- The (model, dimension) vectors are made in is recorded at first use; a worker or server configured
  with another one refuses to start (``EmbeddingSpaceMismatch``) until ``tow embeddings migrate``
  re-embeds everything into a new space and switches to it.
- Every call to the model carries an ``EgressContext`` (purpose embedding, the organisation, the
  display IDs of the records sent, and the person whose edit queued them), so the egress ledger names
  what left the deployment and on whose behalf. The outbox remembers that person (the
  ``RecordStore.attribute_changes_to`` of the edit's unit of work); one call carries the records of one
  organisation and one person, so no ledger row names someone for another person's text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Protocol

from tow_core.ai import EgressContext, EgressPurpose, EmbeddingModel
from tow_core.errors import NotConfigured, TowError
from tow_core.records import RecordType

CHUNK_WORDS = 300
OVERLAP_WORDS = 50
MAX_CHUNKS = 256  # a doc longer than ~75k words is embedded by its first 256 chunks
MAX_RECORD_WORDS = 5_000  # non-doc records: title + the first ~6,500 tokens of the body
MAX_ATTEMPTS = 8
LEASE_SECONDS = 300


class EmbeddingSpaceMismatch(NotConfigured):
    """The configured embedding model/dimension differs from the one the stored vectors were made in."""

    code = "embedding_space_mismatch"


@dataclass(frozen=True, slots=True)
class EmbeddingSpace:
    id: int
    model: str
    dim: int


@dataclass(frozen=True, slots=True)
class EmbeddingJob:
    record_id: int
    generation: int
    attempts: int  # including this one
    acting_user_id: int | None = None  # whose edit queued it; None: nobody's (backfill, import, migration)


@dataclass(frozen=True, slots=True)
class RecordText:
    record_id: int
    organisation_id: int
    display_id: str
    type: RecordType
    title: str
    body: str
    content_hash: str  # of title and body, computed by the store; vectors are stored against it


@dataclass(frozen=True, slots=True)
class EmbeddingStatus:
    space: EmbeddingSpace | None
    migrating: EmbeddingSpace | None
    records: int
    embedded: int  # records with vectors of their current text in the active space
    chunks: int
    due: int  # outbox entries waiting for a worker
    leased: int  # being worked on now
    retrying: int  # failed, waiting for their next attempt
    failed: int  # gave up after MAX_ATTEMPTS; re-queued by the next change of the record
    migrated: int  # records with current vectors in the migrating space


class EmbeddingQueue(Protocol):
    """The outbox of records to (re-)embed."""

    def claim(self, limit: int, lease_seconds: int, max_attempts: int) -> list[EmbeddingJob]: ...

    def finish(self, job: EmbeddingJob) -> None:
        """Done: remove the entry, unless the record changed since it was claimed (then release it)."""
        ...

    def fail(self, job: EmbeddingJob, error: str, retry_in_seconds: int) -> None: ...


class EmbeddingSpaces(Protocol):
    """Where vectors live: the recorded spaces, the records' texts, and the chunk vectors."""

    def active(self) -> EmbeddingSpace | None: ...

    def migrating(self) -> EmbeddingSpace | None: ...

    def record_first(self, model: str, dim: int) -> EmbeddingSpace:
        """The active space, recording ``(model, dim)`` as the active one if there is none yet."""
        ...

    def texts(self, record_ids: Sequence[int]) -> list[RecordText]: ...

    def store(self, space: EmbeddingSpace, record: RecordText, vectors: Sequence[Sequence[float]]) -> bool:
        """Replace the record's vectors in ``space`` if its text is still ``record.content_hash``."""
        ...

    def start_migration(self, model: str, dim: int) -> EmbeddingSpace:
        """The migrating space for ``(model, dim)``: resumed if it exists, else created (replacing a
        migration to anything else)."""
        ...

    def not_current(self, space: EmbeddingSpace, limit: int) -> list[int]:
        """Ids of records without vectors of their current text in ``space``, oldest first."""
        ...

    def switch_to(self, space: EmbeddingSpace) -> None:
        """Atomically make the migrating ``space`` the active one and retire the old one; records
        changed since they were migrated are queued again."""
        ...

    def status(self, max_attempts: int) -> EmbeddingStatus: ...


# --- chunking ----------------------------------------------------------------------------------------


def chunk_texts(record_type: RecordType, title: str, body: str) -> list[str]:
    """The texts to embed for one record: overlapping windows for docs, title + body otherwise."""
    words = body.split()
    if record_type is not RecordType.DOC or len(words) <= CHUNK_WORDS:
        kept = " ".join(words[:MAX_RECORD_WORDS])
        return [f"{title}\n\n{kept}" if kept else title]
    step = CHUNK_WORDS - OVERLAP_WORDS
    starts = range(0, len(words) - OVERLAP_WORDS, step)
    return [f"{title}\n\n{' '.join(words[s:s + CHUNK_WORDS])}" for s in starts][:MAX_CHUNKS]


# --- the (model, dimension) guard ----------------------------------------------------------------------


def require_space(spaces: EmbeddingSpaces, model: EmbeddingModel) -> EmbeddingSpace:
    """The active space, recorded now if this is the first use; refuses a different model/dimension."""
    space = spaces.record_first(model.model_name, model.dimension)
    if (space.model, space.dim) != (model.model_name, model.dimension):
        raise EmbeddingSpaceMismatch(
            f"ai.embedding_dim is {model.dimension} (model {model.model_name}) but the stored vectors have "
            f"dimension {space.dim} (model {space.model}): set ai.embedding_dim back to {space.dim} and "
            f"ai.openai_embedding_model to {space.model}, or re-embed everything with "
            f"`tow embeddings migrate --dim {model.dimension} --model {model.model_name}`"
        )
    return space


# --- the worker's unit of work -------------------------------------------------------------------------


def retry_delay_seconds(attempts: int) -> int:
    """30 s, 1 min, 2 min, ... capped at an hour."""
    return min(3600, 30 * 2 ** max(0, attempts - 1))


def _embed_records(model: EmbeddingModel, records: Sequence[RecordText],
                   acting_user_id: int | None = None) -> list[list[list[float]]]:
    """Vectors per record, one model call for records of one organisation embedded on behalf of one
    person (``acting_user_id``; None: nobody's edit), which is one egress context."""
    chunks = [chunk_texts(r.type, r.title, r.body) for r in records]
    # text_record_ids lets the adapter name, per request it sends, only the records whose chunks it carries.
    context = EgressContext(EgressPurpose.EMBEDDING, acting_user_id, records[0].organisation_id,
                            tuple(r.display_id for r in records),
                            text_record_ids=tuple(r.display_id for r, texts in zip(records, chunks, strict=True)
                                                  for _ in texts))
    flat = model.embed([text for texts in chunks for text in texts], context)
    if len(flat) != sum(map(len, chunks)) or any(len(v) != model.dimension for v in flat):
        raise TowError(f"the embedding model answered {len(flat)} vectors of the wrong shape "
                       f"(expected {sum(map(len, chunks))} of dimension {model.dimension})")
    out, start = [], 0
    for texts in chunks:
        out.append(flat[start:start + len(texts)])
        start += len(texts)
    return out


def _by_organisation(records: Sequence[RecordText]) -> list[list[RecordText]]:
    ordered = sorted(records, key=lambda r: (r.organisation_id, r.record_id))
    return [list(group) for _, group in groupby(ordered, key=lambda r: r.organisation_id)]


def _by_actor(records: Sequence[RecordText],
              actors: dict[int, int | None]) -> list[tuple[int | None, list[RecordText]]]:
    """``records`` (of one organisation) grouped by whose edit queued each, nobody's (None) first."""
    def actor(record: RecordText) -> int | None:
        return actors.get(record.record_id)

    ordered = sorted(records, key=lambda r: (actor(r) is not None, actor(r) or 0, r.record_id))
    return [(key, list(group)) for key, group in groupby(ordered, key=actor)]


def embed_pending(queue: EmbeddingQueue, spaces: EmbeddingSpaces, model: EmbeddingModel, *,
                  batch_size: int = 64, lease_seconds: int = LEASE_SECONDS) -> int:
    """Claim up to ``batch_size`` queued records, embed and store them; returns how many were claimed
    (0: nothing to do). A provider error fails the records of that call for a later retry."""
    space = require_space(spaces, model)
    jobs = queue.claim(batch_size, lease_seconds, MAX_ATTEMPTS)
    if not jobs:
        return 0
    texts = spaces.texts([job.record_id for job in jobs])
    actors = {job.record_id: job.acting_user_id for job in jobs}
    failed: dict[int, str] = {}
    for records in _by_organisation(texts):
        for acting_user_id, own in _by_actor(records, actors):
            try:
                vectors = _embed_records(model, own, acting_user_id)
            except TowError as exc:
                failed.update((r.record_id, exc.message) for r in own)
                continue
            for record, record_vectors in zip(own, vectors, strict=True):
                spaces.store(space, record, record_vectors)
    for job in jobs:
        if job.record_id in failed:
            queue.fail(job, failed[job.record_id], retry_delay_seconds(job.attempts))
        else:
            queue.finish(job)  # also when the record was deleted meanwhile: nothing left to embed
    return len(jobs)


# --- migration to another model/dimension ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MigrationOutcome:
    space: EmbeddingSpace
    embedded_now: int
    switched: bool  # False: the configured space was recorded directly (nothing was embedded before)


def migrate(spaces: EmbeddingSpaces, model: EmbeddingModel, *, batch_size: int = 64,
            progress: Callable[[int, int], None] = lambda done, total: None) -> MigrationOutcome:
    """Re-embed every record with ``model`` into a new space while search keeps using the active one,
    then switch atomically. Resumable: records already embedded in the new space are skipped."""
    active = spaces.active()
    if active is None or (active.model, active.dim) == (model.model_name, model.dimension):
        return MigrationOutcome(spaces.record_first(model.model_name, model.dimension), 0, False)
    target = spaces.start_migration(model.model_name, model.dimension)
    before = spaces.status(MAX_ATTEMPTS)
    embedded = 0
    progress(before.migrated, before.records)
    while record_ids := spaces.not_current(target, batch_size):
        texts = spaces.texts(record_ids)
        for records in _by_organisation(texts):
            for record, vectors in zip(records, _embed_records(model, records), strict=True):
                spaces.store(target, record, vectors)
        embedded += len(texts)
        progress(min(before.records, before.migrated + embedded), before.records)
    spaces.switch_to(target)
    return MigrationOutcome(target, embedded, True)
