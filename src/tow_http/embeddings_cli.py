"""`tow embeddings status|migrate` and the embedding worker `tow worker` runs (SPEC §6, §12)."""

from __future__ import annotations

import argparse

import msgspec

from tow_core import embeddings
from tow_core.errors import NotConfigured
from tow_core.readiness import require_current_schema
from tow_http.composition import Container, container_for
from tow_http.config import LoadedConfig
from tow_http.embedding_worker import EmbeddingWorker
from tow_http.progress import ProgressDisplay

AI_NOT_CONFIGURED = "no embedding model is configured: set OPENAI_API_KEY (and ai.* in tow.yaml)"


def embedding_worker(container: Container) -> EmbeddingWorker | None:
    """A worker for the configured model, or None when AI is not configured. Its batches are leased for
    ``jobs.lease_seconds``, like jobs and agent runs: a batch whose worker died is embedded again after it."""
    model = container.embedding_model()
    if model is None:
        return None
    return EmbeddingWorker(container.embedding_queue(), container.embedding_spaces(), model,
                           lease_seconds=container.config().settings.jobs.lease_seconds)


def _status(_: argparse.Namespace, config: LoadedConfig) -> int:
    with container_for(config) as container:
        require_current_schema(container.schema_migrator())
        status = container.embedding_spaces().status(embeddings.MAX_ATTEMPTS)
    space = status.space
    described = f"{space.model}, {space.dim} dimensions" if space else "none yet (recorded at first use)"
    print(f"embedding space: {described}")
    share = f" ({100 * status.embedded / status.records:.1f} %)" if status.records else ""
    print(f"coverage:        {status.embedded} of {status.records} records embedded{share}, {status.chunks} chunks")
    print(f"backlog:         {status.due} due, {status.leased} being embedded, {status.retrying} waiting to retry, "
          f"{status.failed} failed after {embeddings.MAX_ATTEMPTS} attempts")
    if status.migrating is not None:
        m = status.migrating
        print(f"migration:       to {m.model}, {m.dim} dimensions: {status.migrated} of {status.records} records "
              f"(resume with `tow embeddings migrate --dim {m.dim} --model {m.model}`)")
    return 0


def with_embedding(config: LoadedConfig, dim: int, model: str | None) -> LoadedConfig:
    ai = msgspec.structs.replace(config.settings.ai, embedding_dim=dim,
                                 openai_embedding_model=model or config.settings.ai.openai_embedding_model)
    return LoadedConfig(msgspec.structs.replace(config.settings, ai=ai), config.secrets, config.sources,
                        config.base_dir)


def _dimension(text: str) -> int:
    value = int(text)
    if not 8 <= value <= 4000:  # the bounds of ai.embedding_dim
        raise argparse.ArgumentTypeError("must be from 8 to 4000")
    return value


def _migrate(args: argparse.Namespace, config: LoadedConfig) -> int:
    target = with_embedding(config, args.dim, args.model)
    with container_for(target) as container:
        require_current_schema(container.schema_migrator())
        model = container.embedding_model()
        if model is None:
            raise NotConfigured(AI_NOT_CONFIGURED)
        with ProgressDisplay() as display:
            outcome = embeddings.migrate(container.embedding_spaces(), model, batch_size=args.batch_size,
                                         progress=lambda done, total: display("re-embedding", done, total, "records"))
    space = outcome.space
    if not outcome.switched:
        print(f"embedding space is now {space.model} with {space.dim} dimensions (nothing to re-embed)")
    else:
        print(f"switched to {space.model} with {space.dim} dimensions after re-embedding {outcome.embedded_now} "
              f"records in this run; now set ai.embedding_dim: {space.dim} and ai.openai_embedding_model: "
              f"{space.model} in tow.yaml and restart `tow serve` and `tow worker`")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("embeddings", help="embedding vectors for semantic search",
                                description="Inspect the embeddings or migrate them to another model/dimension.")
    sub = group.add_subparsers(dest="embeddings_command", metavar="COMMAND", required=True)
    sub.add_parser(
        "status", help="show backlog and coverage",
        description="Show the recorded embedding model and dimension, how many records are embedded, the "
        "outbox backlog (due, in progress, retrying, failed) and any unfinished migration.",
    ).set_defaults(handler=_status, needs_app_secret=False)
    migrate = sub.add_parser(
        "migrate", help="re-embed everything with another dimension/model",
        description="Re-embed every record into a new vector space with DIM dimensions (and MODEL), while search "
        "keeps serving the current vectors; switch atomically at the end. Resumable: interrupt it and run it "
        "again to continue. Afterwards set ai.embedding_dim (and ai.openai_embedding_model) to the new values.",
    )
    migrate.add_argument("--dim", type=_dimension, required=True, help="the new embedding dimension (1-4000)")
    migrate.add_argument("--model", help="the new embedding model (default: ai.openai_embedding_model)")
    migrate.add_argument("--batch-size", type=int, default=64, help="records per embedding request (default 64)")
    migrate.set_defaults(handler=_migrate, needs_app_secret=False)
