"""Issue 13, data controls: an embedding triggered by a person's edit goes on that person's behalf. The unit
of work acting for someone says so to the storage (whose outbox trigger remembers it: the PostgreSQL side is
tests/e2e/test_ai_search_integration.py), and the worker sends each person's records in their own calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_embeddings import FakeEmbeddingModel
from tests.fake_unit_of_work import fake_transactions, signed_in
from tests.fakes import InMemoryDirectory
from tow_core.access import OrgRole
from tow_core.embeddings import EmbeddingJob, EmbeddingSpace, RecordText, embed_pending
from tow_core.errors import NotAuthenticated, NotFound
from tow_core.identity import WorkflowMode
from tow_core.records import RecordType
from tow_core.unit_of_work import SessionCredential

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_a_unit_of_work_acting_for_a_person_names_them_to_the_storage_and_an_unattended_one_does_not():
    directory = InMemoryDirectory()
    ada = directory.add_user("ada@example.com", "Ada", None, server_admin=False)
    transactions = fake_transactions(lambda: NOW, directory=directory)
    with transactions.acting_as(signed_in(directory, ada.id, NOW)):
        assert directory.acted_for == [ada.id]
    with transactions.unattended():
        pass
    with pytest.raises(NotAuthenticated), transactions.acting_as(SessionCredential("no such session")):
        pass
    expired = signed_in(directory, ada.id, NOW, lifetime=timedelta(seconds=-1))
    with pytest.raises(NotAuthenticated), transactions.acting_as(expired):
        pass
    assert directory.acted_for == [ada.id]


def test_an_agent_runs_unit_of_work_names_its_owner_and_refuses_an_ex_member():
    directory = InMemoryDirectory()
    ada = directory.add_user("ada@example.com", "Ada", None, server_admin=False)
    org = directory.add_organisation("Acme", WorkflowMode.ORGANIZATION).id
    directory.set_membership(org, ada.id, OrgRole.MEMBER)
    transactions = fake_transactions(lambda: NOW, directory=directory)
    with transactions.on_behalf_of(ada.id, org) as owner:  # what a run saves is embedded on Ada's behalf
        assert directory.acted_for == [ada.id] and owner.workspace.principal.user_id == ada.id
    directory.remove_membership(org, ada.id)
    with pytest.raises(NotFound), transactions.on_behalf_of(ada.id, org):
        pass
    with pytest.raises(NotFound), transactions.on_behalf_of(10_000, org):
        pass
    assert directory.acted_for == [ada.id]


class Queue:
    def __init__(self, jobs: list[EmbeddingJob]) -> None:
        self.jobs, self.finished, self.failed = jobs, [], []

    def claim(self, limit, lease_seconds, max_attempts):
        jobs, self.jobs = self.jobs, []
        return jobs

    def finish(self, job):
        self.finished.append(job.record_id)

    def fail(self, job, error, retry_in_seconds):
        self.failed.append(job.record_id)


class Spaces:
    def __init__(self, texts: list[RecordText]) -> None:
        self._texts = {t.record_id: t for t in texts}
        self.stored: list[int] = []

    def record_first(self, model, dim):
        return EmbeddingSpace(1, model, dim)

    def texts(self, record_ids):
        return [self._texts[i] for i in sorted(record_ids)]

    def store(self, space, record, vectors):
        self.stored.append(record.record_id)
        return True


def text(record_id: int, org: int) -> RecordText:
    return RecordText(record_id, org, f"DOC-{record_id}", RecordType.DOC, f"doc {record_id}", "body", "h")


def test_each_call_carries_one_organisation_and_one_persons_records_and_names_that_person():
    # records 1 and 3 edited by user 7, 2 by user 8, 4 by nobody (a backfill), 5 by user 7 in another org
    jobs = [EmbeddingJob(1, 1, 1, 7), EmbeddingJob(2, 1, 1, 8), EmbeddingJob(3, 1, 1, 7), EmbeddingJob(4, 1, 1),
            EmbeddingJob(5, 1, 1, 7)]
    queue, spaces = Queue(jobs), Spaces([text(1, 1), text(2, 1), text(3, 1), text(4, 1), text(5, 2)])
    model = FakeEmbeddingModel()
    assert embed_pending(queue, spaces, model) == 5
    calls = {(c.organisation_id, c.acting_user_id, c.record_display_ids) for c in model.contexts}
    assert calls == {(1, None, ("DOC-4",)), (1, 7, ("DOC-1", "DOC-3")), (1, 8, ("DOC-2",)), (2, 7, ("DOC-5",))}
    assert len(model.contexts) == 4 and sorted(spaces.stored) == sorted(queue.finished) == [1, 2, 3, 4, 5]


def test_a_failed_call_fails_only_the_records_it_carried():
    queue, spaces = Queue([EmbeddingJob(1, 1, 1, 7), EmbeddingJob(2, 1, 1, 8)]), Spaces([text(1, 1), text(2, 1)])
    model = FakeEmbeddingModel()
    model.fail_next = 1  # the first call (user 7's) fails
    embed_pending(queue, spaces, model)
    assert (queue.failed, queue.finished, spaces.stored) == ([1], [2], [2])
