"""The embedding pipeline against PostgreSQL: the outbox, leases, concurrent workers, the
(model, dimension) guard at startup and the resumable migration to another dimension.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from dependency_injector import providers

from tests.fake_embeddings import FakeEmbeddingModel
from tests.postgres_fixtures import SECRET
from tests.semantic_vectors import bag_of_words_vector
from tow_core import embeddings
from tow_core.records import RecordQuery
from tow_http import cli
from tow_http.composition import Container
from tow_http.embedding_worker import EmbeddingWorker


def seed(engine: sa.Engine, count: int, *, start: int = 1) -> None:
    """An organisation and ``count`` organisation-scoped decisions, written the way any code path would."""
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO organisations (id, name) VALUES (1, 'Acme') ON CONFLICT DO NOTHING"))
        conn.execute(sa.text("INSERT INTO users (id, email, display_name) VALUES (1, 'ada@example.com', 'Ada') "
                             "ON CONFLICT DO NOTHING"))
        conn.execute(sa.text("INSERT INTO memberships (organisation_id, user_id, role) VALUES (1, 1, 'member') "
                             "ON CONFLICT DO NOTHING"))
        conn.execute(sa.text(
            "INSERT INTO records (organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, status) "
            "SELECT 1, 'decision', 'DEC', n, 'organisation', 1, 'decision ' || n, 'word' || n || ' shared', "
            "'proposed' FROM generate_series(CAST(:start AS int), CAST(:end AS int)) n"), {"start": start, "end": start + count - 1})


def outbox(engine: sa.Engine) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT record_id, generation FROM embedding_outbox")).all())


def chunk_count(engine: sa.Engine, space_id: int | None = None) -> int:
    with engine.connect() as conn:
        if space_id is None:
            return conn.execute(sa.text("SELECT count(*) FROM embedding_chunks")).scalar()
        return conn.execute(sa.text("SELECT count(*) FROM embedding_chunks WHERE space_id = :s"),
                            {"s": space_id}).scalar()


@pytest.fixture
def container(make_container) -> Container:
    return make_container()


def worker(container: Container, model: FakeEmbeddingModel, batch_size: int = 64) -> EmbeddingWorker:
    return EmbeddingWorker(container.embedding_queue(), container.embedding_spaces(), model, batch_size=batch_size)


def test_record_changes_queue_work_in_their_own_transaction(container):
    engine = container.engine()
    seed(engine, 2)
    assert outbox(engine) == {1: 1, 2: 1}
    worker(container, FakeEmbeddingModel()).run_once()
    assert outbox(engine) == {} and chunk_count(engine) == 2
    with engine.begin() as conn:  # a status change keeps the text: nothing to re-embed
        conn.execute(sa.text("UPDATE records SET status = 'active' WHERE id = 1"))
    assert outbox(engine) == {}
    with engine.connect() as conn, conn.begin() as tx:  # a rolled-back edit queues nothing
        conn.execute(sa.text("UPDATE records SET title = 'changed' WHERE id = 1"))
        tx.rollback()
    assert outbox(engine) == {}
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE records SET body = 'changed' WHERE id = 1"))
        conn.execute(sa.text("UPDATE records SET title = 'changed too' WHERE id = 1"))
    assert outbox(engine) == {1: 2}  # one entry per record, its generation bumped
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM records WHERE id = 1"))
    assert outbox(engine) == {} and chunk_count(engine) == 1  # vectors and work go with the record


def test_concurrent_workers_never_embed_the_same_record_at_once_and_embed_each_once(container):
    engine = container.engine()
    seed(engine, 120)
    model = FakeEmbeddingModel(pause=0.01)
    workers = [worker(container, model, batch_size=7) for _ in range(4)]
    threads = [threading.Thread(target=w.run_once) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert model.overlaps == []
    assert sorted(model.texts) == sorted(f"decision {n}\n\nword{n} shared" for n in range(1, 121))
    assert sum(w.embedded for w in workers) == 120 and sum(1 for w in workers if w.embedded) > 1
    assert outbox(engine) == {} and chunk_count(engine) == 120


def test_a_lease_keeps_other_workers_off_until_it_expires(container):
    engine = container.engine()
    seed(engine, 3)
    queue = container.embedding_queue()
    crashed = queue.claim(10, lease_seconds=300, max_attempts=8)
    assert len(crashed) == 3 and queue.claim(10, 300, 8) == []
    with engine.begin() as conn:  # the crashed worker's lease runs out
        conn.execute(sa.text("UPDATE embedding_outbox SET leased_until = now() - interval '1 second'"))
    retaken = queue.claim(10, 300, 8)
    assert [j.record_id for j in retaken] == [j.record_id for j in crashed]
    assert all(j.attempts == 2 for j in retaken)


def test_an_edit_during_embedding_is_embedded_afterwards_not_lost(container):
    engine = container.engine()
    seed(engine, 1)
    spaces, queue, model = container.embedding_spaces(), container.embedding_queue(), FakeEmbeddingModel()
    space = embeddings.require_space(spaces, model)
    [job] = queue.claim(10, 300, 8)
    [text] = spaces.texts([job.record_id])
    with engine.begin() as conn:  # someone saves while the worker is at the provider
        conn.execute(sa.text("UPDATE records SET body = 'kiwi' WHERE id = 1"))
    assert spaces.store(space, text, [bag_of_words_vector(text.title, 64)]) is False  # stale: not written
    queue.finish(job)
    assert outbox(engine) == {1: 2}  # still queued, and free for the next claim
    worker(container, model).run_once()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT content_hash = md5(r.title || chr(10) || r.body) FROM embedding_chunks "
                                    "JOIN records r ON r.id = record_id")).scalar() is True


def test_a_failing_provider_gives_up_after_max_attempts_and_a_new_edit_retries(container):
    engine = container.engine()
    seed(engine, 1)
    model = FakeEmbeddingModel()
    model.fail_next = embeddings.MAX_ATTEMPTS
    for _ in range(embeddings.MAX_ATTEMPTS):
        worker(container, model).run_once()
        with engine.begin() as conn:  # skip the backoff wait
            conn.execute(sa.text("UPDATE embedding_outbox SET available_at = now()"))
    assert container.embedding_spaces().status(embeddings.MAX_ATTEMPTS).failed == 1
    assert worker(container, model).run_once() == 0
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE records SET title = 'again' WHERE id = 1"))
    assert worker(container, model).run_once() == 1 and outbox(engine) == {}


# --- the CLI: the dimension guard and the migration ------------------------------------------------------


@pytest.fixture
def cli_env(fresh_database_url, tmp_path, monkeypatch):
    """Run `tow` against the test database with a fake model of the configured dimension."""
    monkeypatch.setenv("DATABASE_URL", fresh_database_url.replace("postgresql+psycopg://", "postgresql://"))
    monkeypatch.setenv("APP_SECRET", SECRET)
    made: list[FakeEmbeddingModel] = []
    interrupt_after: list[int | None] = [None]

    def model_for(config):
        model = FakeEmbeddingModel(config.settings.ai.embedding_dim, config.settings.ai.openai_embedding_model)
        model.calls_before_interrupt = interrupt_after[0]
        made.append(model)
        return model

    config_path = tmp_path / "tow.yaml"

    def run(*args: str, dim: int = 64) -> int:
        config_path.write_text(f"ai:\n  embedding_dim: {dim}\n")
        return cli.main(["--config", str(config_path), *args])

    with Container.embedding_model.override(providers.Callable(model_for, Container.config)):
        run.made, run.interrupt_after = made, interrupt_after
        yield run


def chunk_scopes(engine: sa.Engine) -> dict[int, set[tuple[int, str, int]]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT record_id, organisation_id, scope_kind, scope_ref FROM embedding_chunks"))
        scopes: dict[int, set[tuple[int, str, int]]] = {}
        for record_id, *scope in rows:
            scopes.setdefault(record_id, set()).add(tuple(scope))
        return scopes


def test_chunks_carry_their_records_scope_whoever_writes_either(container):
    """Semantic search filters chunks by the scope copied onto them: the database keeps the copy equal to
    the record's — a move rewrites the chunks, and a writer cannot give a chunk any other scope."""
    engine = container.engine()
    seed(engine, 2)
    worker(container, FakeEmbeddingModel()).run_once()
    assert chunk_scopes(engine) == {1: {(1, "organisation", 1)}, 2: {(1, "organisation", 1)}}
    with engine.begin() as conn:  # moved, as PgRecordStore.save does it
        conn.execute(sa.text("UPDATE records SET scope_kind = 'user', scope_ref = 1 WHERE id = 1"))
    assert chunk_scopes(engine) == {1: {(1, "user", 1)}, 2: {(1, "organisation", 1)}}
    with engine.begin() as conn:  # an attack on the copy: a chunk re-labelled, a chunk inserted mislabelled
        conn.execute(sa.text("UPDATE embedding_chunks SET scope_kind = 'organisation', scope_ref = 1 "
                             "WHERE record_id = 1"))
        conn.execute(sa.text(
            "INSERT INTO embedding_chunks (space_id, record_id, chunk, content_hash, embedding, organisation_id, "
            "scope_kind, scope_ref) SELECT space_id, record_id, 1, content_hash, embedding, 1, 'organisation', 1 "
            "FROM embedding_chunks WHERE record_id = 1"))
    assert chunk_scopes(engine) == {1: {(1, "user", 1)}, 2: {(1, "organisation", 1)}}


def test_a_chunk_inserted_while_its_record_moves_takes_the_moved_scope(container):
    """The race the insert trigger's row lock closes: a move not yet committed, and a chunk inserted for the
    record meanwhile by a writer that does not lock the record itself (the worker's ``store`` does; an
    import or a hand-written INSERT may not). The move's trigger cannot see the uncommitted chunk, so the
    insert must wait for the move and read its scope."""
    engine = container.engine()
    seed(engine, 1)
    space = embeddings.require_space(container.embedding_spaces(), FakeEmbeddingModel())
    vector = "[" + ",".join(["1"] * space.dim) + "]"

    failures: list[BaseException] = []

    def insert_chunk(conn: sa.Connection) -> None:
        try:
            with conn.begin():
                conn.execute(sa.text("INSERT INTO embedding_chunks (space_id, record_id, chunk, content_hash, "
                                     "embedding) VALUES (:space, 1, 0, 'h', CAST(:v AS vector))"),
                             {"space": space.id, "v": vector})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below, not lost in the thread
            failures.append(exc)

    # Every connection is taken from the pool before the race starts, so none of them waits for another.
    with engine.connect() as mover, engine.connect() as inserter, engine.connect() as watcher:
        move = mover.begin()
        mover.execute(sa.text("UPDATE records SET scope_kind = 'user', scope_ref = 1 WHERE id = 1"))
        inserter_pid = inserter.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        inserter.rollback()
        inserting = threading.Thread(target=insert_chunk, args=(inserter,))
        inserting.start()
        while inserting.is_alive() and not watcher.execute(sa.text(  # until the insert waits on the moved row
                "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND wait_event_type = 'Lock'"),
                {"pid": inserter_pid}).scalar():
            threading.Event().wait(0.01)
        move.commit()
        inserting.join()
    assert failures == []
    assert chunk_scopes(engine) == {1: {(1, "user", 1)}}


def test_startup_with_another_dimension_is_refused_naming_both_and_the_command(cli_env, make_container, capsys):
    container = make_container()  # migrates the database the CLI uses
    seed(container.engine(), 3)
    worker(container, FakeEmbeddingModel(dimension=64)).run_once()  # first use records 64
    for command in (["worker"], ["serve"]):
        assert cli_env(*command, dim=32) == cli.EXIT_FAILURE
        message = capsys.readouterr().err
        assert "ai.embedding_dim is 32" in message and "dimension 64" in message
        assert "tow embeddings migrate --dim 32 --model text-embedding-3-small" in message


def test_migrate_is_resumable_keeps_search_on_the_old_vectors_and_switches_at_the_end(cli_env, make_container,
                                                                                     capsys, monkeypatch):
    container = make_container()
    engine = container.engine()
    seed(engine, 30)
    worker(container, FakeEmbeddingModel(dimension=64, model_name="text-embedding-3-small")).run_once()
    old = container.embedding_spaces().active()

    cli_env.interrupt_after[0] = 2  # killed during the third batch
    assert cli_env("embeddings", "migrate", "--dim", "32", "--batch-size", "5") == 130
    assert capsys.readouterr().err == ""  # stderr is not a terminal: no progress lines
    status = container.embedding_spaces().status(embeddings.MAX_ATTEMPTS)
    assert (status.space, status.migrating.dim, status.migrated) == (old, 32, 10)
    with engine.begin() as conn:  # search keeps serving the old vectors meanwhile
        from tow_adapters.postgres.embeddings import PgSemanticIndex

        index = PgSemanticIndex(conn)
        assert index.active_space() == old
        hits = index.nearest_readable(1, 1, old, bag_of_words_vector("word7", 64), "word7", RecordQuery(), 3)
        assert [str(h.summary.display_id) for h in hits][0] == "DEC-7" and len(hits) == 3
    capsys.readouterr()
    assert cli_env("embeddings", "status") == 0
    assert "migration:       to text-embedding-3-small, 32 dimensions: 10 of 30 records" in capsys.readouterr().out

    cli_env.interrupt_after[0] = None
    with engine.begin() as conn:  # an edit during the migration is not lost either
        conn.execute(sa.text("UPDATE records SET body = 'edited' WHERE number = 3"))
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's switch: stderr is an interactive terminal this time
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    assert cli_env("embeddings", "migrate", "--dim", "32", "--batch-size", "5") == 0
    resumed = cli_env.made[-1]
    assert len(resumed.texts) == 21  # only what the first run had not done, plus the edited record
    captured = capsys.readouterr()
    assert "switched to text-embedding-3-small with 32 dimensions" in captured.out
    assert "re-embedding" in captured.err and "30/30 records" in captured.err and "ETA" in captured.err
    new = container.embedding_spaces().active()
    assert new.dim == 32 and chunk_count(engine, old.id) == 0 and chunk_count(engine, new.id) == 30
    assert cli_env("worker", dim=64) == cli.EXIT_FAILURE  # the old configuration is refused now
    assert "dimension 32" in capsys.readouterr().err


def test_serve_runs_an_embedding_worker_while_it_serves_and_stops_it_after(cli_env, make_container, monkeypatch):
    from tow_http import serving

    container = make_container()
    engine = container.engine()
    seed(engine, 5)
    seen_while_serving = []

    def serve_briefly(config, **options):  # stands in for the HTTP server: waits for the worker, then "shuts down"
        for _ in range(200):
            if not outbox(engine):
                break
            threading.Event().wait(0.05)
        seen_while_serving.append(chunk_count(engine))
        return True

    monkeypatch.setattr(serving, "serve", serve_briefly)
    assert cli_env("serve") == 0
    assert seen_while_serving == [5]
    embedded = sum(len(m.texts) for m in cli_env.made)
    assert embedded == 5
    seed(engine, 1, start=6)  # after the server stopped, nothing embeds it
    threading.Event().wait(0.5)
    assert sum(len(m.texts) for m in cli_env.made) == 5 and outbox(engine) == {6: 1}


def test_serve_with_no_worker_leaves_the_embeddings_to_tow_worker_processes(cli_env, make_container, monkeypatch):
    from tow_http import serving

    engine = make_container().engine()
    seed(engine, 3)

    def serve_a_moment(config, **options):  # stands in for the HTTP server: half a second, then "shuts down"
        threading.Event().wait(0.5)
        return True

    monkeypatch.setattr(serving, "serve", serve_a_moment)
    assert cli_env("serve", "--no-worker") == 0
    assert sum(len(m.texts) for m in cli_env.made) == 0 and len(outbox(engine)) == 3  # app machines only serve
