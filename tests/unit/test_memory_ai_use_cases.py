"""The memory-review and AI use case objects (tow_core.use_cases.memory / .ai) over the in-memory fakes: each
call loads the caller fresh, checks membership, returns what its reader may see, and commits or rolls back as
one unit of work."""

from __future__ import annotations

import pytest

from tests.fake_egress import InMemoryEgressLedger
from tests.fake_records import InMemoryMemoryDiffStore
from tests.fake_unit_of_work import fake_transactions, with_inbox
from tests.fake_uploads import InMemoryUploadRecords
from tests.unit.records_world import World
from tow_core.ai import EgressPurpose
from tow_core.egress import EgressEntry
from tow_core.errors import AccessDenied, AiNotConfigured, Conflict, InvalidInput, NotAuthenticated, NotFound
from tow_core.memory_diffs import ArchiveItems, CreateItem, DiffStatus, ItemRef, OutcomeResult, UpdateItem
from tow_core.records import RecordType
from tow_core.unit_of_work import SessionCredential
from tow_core.use_cases.ai import AiUseCases
from tow_core.use_cases.memory import MemoryReviewUseCases


class MemoryWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.diffs = InMemoryMemoryDiffStore(self.directory, self.clock)
        self.uploads = InMemoryUploadRecords(self.directory, self.records, self.clock)

    @property
    def transactions(self):
        return fake_transactions(self.clock, rollback=(*self._tables, self.diffs), **with_inbox(
            self.clock, directory=self.directory, records=self.records, history=self.keeping,
            memory_diffs=self.diffs, uploads=self.uploads))

    def item(self, title: str, scope, name: str = "ada", **fields):
        return self.create(name, RecordType.MEMORY, title, scope, fields={"memory_type": "fact", **fields})


@pytest.fixture
def w() -> MemoryWorld:
    return MemoryWorld()


@pytest.fixture
def memory(w) -> MemoryReviewUseCases:
    return MemoryReviewUseCases(w.transactions)


def test_propose_list_get_and_approve_as_members_refuse_outsiders_and_revoked_sessions(w, memory):
    ada, bob, oscar = w.credential("ada"), w.credential("bob"), w.credential("oscar")
    proposed = memory.propose(bob, w.org, "organisation", None, [CreateItem("Ship Friday", "", {"memory_type": "decision"})],
                              rationale="agreed in standup")
    assert proposed.summary.status is DiffStatus.PENDING and proposed.summary.author_id == w.ids["bob"]
    assert proposed.operations[0].visible and proposed.operations[0].changes[0].before is None

    page = memory.list_diffs(ada, w.org, frozenset({DiffStatus.PENDING}))
    assert [d.id for d in page.items] == [proposed.summary.id] and page.items[0].operation_count == 1
    with pytest.raises(NotFound):  # not a member of Acme
        memory.get(oscar, w.org, proposed.summary.id)
    with pytest.raises(NotAuthenticated):
        memory.list_diffs(SessionCredential("forged"), w.org)

    approved = memory.approve(ada, w.org, proposed.summary.id, note="yes")
    assert approved.summary.status is DiffStatus.APPROVED and approved.review_note == "yes"
    created = approved.outcomes[0].display_ids[0]
    assert approved.operations[0].changes[0].display_id == created
    assert w.records.readable_by_display_id(w.ids["bob"], w.org, created).title == "Ship Friday"
    with pytest.raises(Conflict):  # decided diffs never change again
        memory.reject(ada, w.org, proposed.summary.id)

    w.directory.set_active(w.ids["bob"], False)  # deactivated: refused on the next call
    with pytest.raises(NotAuthenticated):
        memory.get(bob, w.org, proposed.summary.id)


def test_a_reader_who_cannot_read_an_item_gets_the_operation_and_its_outcome_without_any_detail(w, memory):
    ada, bob = w.credential("ada"), w.credential("bob")
    public = w.item("Public fact", w.org_scope)
    secret = w.item("Secret fact", w.project("SEC"))  # Bob has no grant on SEC
    diff = memory.propose(ada, w.org, "organisation", None, [
        UpdateItem(ItemRef(public.display_id, public.version), title="Public fact, revised"),
        ArchiveItems((ItemRef(secret.display_id, secret.version),)),
    ])
    seen = memory.get(bob, w.org, diff.summary.id)
    assert [(o.visible, len(o.changes)) for o in seen.operations] == [(True, 1), (False, 0)]
    assert seen.operations[0].changes[0].before == {"title": "Public fact"}

    memory.approve(ada, w.org, diff.summary.id)
    outcomes = memory.get(bob, w.org, diff.summary.id).outcomes
    assert outcomes[0].display_ids == (public.display_id,)
    assert (outcomes[1].result, outcomes[1].reason, outcomes[1].display_ids) == (OutcomeResult.APPLIED, None, ())
    assert memory.get(ada, w.org, diff.summary.id).outcomes[1].display_ids == (secret.display_id,)


def test_an_approval_that_fails_part_way_leaves_nothing_written(w, memory):
    ada, bob = w.credential("ada"), w.credential("bob")
    private = w.item("Bob's note", w.private("bob"), name="bob")  # Ada cannot read Bob's private scope
    diff = memory.propose(bob, w.org, "organisation", None, [
        CreateItem("First", "", {"memory_type": "fact"}),
        CreateItem("Cites Bob's note", "", {"memory_type": "fact", "source_references": [str(private.display_id)]}),
    ])
    before = dict(w.records.rows)
    with pytest.raises(InvalidInput):  # the reviewer writes the items and may not cite what they cannot read
        memory.approve(ada, w.org, diff.summary.id)
    assert w.records.rows == before  # the first create was rolled back with the rest
    assert memory.get(ada, w.org, diff.summary.id).summary.status is DiffStatus.PENDING


def test_the_pages_private_choice_is_the_callers_own_scope_and_the_api_still_needs_an_id(w, memory):
    bob = w.credential("bob")
    diff = memory.propose(bob, w.org, "user", None, [CreateItem("Mine", "", {"memory_type": "fact"})],
                          own_private_scope=True)
    assert diff.summary.scope == w.private("bob")
    with pytest.raises(InvalidInput):
        memory.propose(bob, w.org, "user", None, [CreateItem("Mine", "", {"memory_type": "fact"})])
    with pytest.raises(NotFound):  # someone else's private scope
        memory.propose(bob, w.org, "user", w.ids["ada"], [CreateItem("Theirs", "", {"memory_type": "fact"})])


def test_the_pages_read_frame_content_and_member_names_in_one_call(w, memory):
    ada, oscar = w.credential("ada"), w.credential("oscar")
    diff = memory.propose(ada, w.org, "organisation", None, [CreateItem("Fact", "", {"memory_type": "fact"})])
    listed = memory.list_page(ada, w.org, None, frozenset(), cursor=None)
    assert listed.frame.org.id == w.org and [d.id for d in listed.content.diffs] == [diff.summary.id]
    shown = memory.diff_page(ada, w.org, "OPS", diff.summary.id)
    assert shown.frame.project.key == "OPS" and shown.content.people[w.ids["bob"]] == "Bob"
    assert shown.content.diff.summary.id == diff.summary.id
    with pytest.raises(NotFound):
        memory.diff_page(oscar, w.org, None, diff.summary.id)


# --- AI status and the egress ledger ---------------------------------------------------------------


def _entry(org_id: int | None, user_id: int, purpose: EgressPurpose = EgressPurpose.CHAT) -> EgressEntry:
    return EgressEntry("openai", "https://api.openai.com/v1", "m", purpose, user_id, org_id, ("DOC-1",), 10, 20, 5,
                       "ok")


def test_ai_status_is_for_anyone_signed_in_and_unconfigured_without_ai(w):
    ai = AiUseCases(w.transactions, InMemoryEgressLedger(), {"configured": True})
    assert ai.status(w.credential("cy")) == {"configured": True}
    with pytest.raises(NotAuthenticated):
        ai.status(SessionCredential("forged"))
    with pytest.raises(AiNotConfigured):
        AiUseCases(w.transactions).status(w.credential("cy"))
    with pytest.raises(AiNotConfigured):
        AiUseCases(w.transactions).egress(w.credential("ada"), w.org)


def test_the_egress_ledger_is_for_owners_and_admins_and_server_admins_read_the_server_ledger(w):
    ledger = InMemoryEgressLedger()
    for entry in (_entry(w.org, w.ids["bob"]), _entry(w.org, w.ids["ada"], EgressPurpose.EMBEDDING),
                  _entry(w.other_org, w.ids["oscar"]), _entry(None, w.ids["ada"])):
        ledger.record(entry)
    ai = AiUseCases(w.transactions, ledger, None)
    ada = w.credential("ada")

    assert [e.acting_user_id for e in ai.egress(ada, w.org).entries] == [w.ids["ada"], w.ids["bob"]]
    assert [e.acting_user_id for e in ai.egress(ada, w.org, purpose="chat").entries] == [w.ids["bob"]]
    with pytest.raises(InvalidInput):
        ai.egress(ada, w.org, purpose="telepathy")
    with pytest.raises(AccessDenied):  # a plain member
        ai.egress(w.credential("bob"), w.org)
    with pytest.raises(NotFound):  # another organisation's ledger
        ai.egress(ada, w.other_org)
    with pytest.raises(AccessDenied):  # the server ledger needs a server admin
        ai.egress(ada, None)
    w.directory.set_server_admin(w.ids["ada"], True)
    assert [e.organisation_id for e in ai.egress(ada, None).entries] == [None]

    framed = ai.egress_page(ada, w.org, None, user_id=w.ids["bob"])
    assert framed.frame.org.id == w.org and [e.acting_user_id for e in framed.content.entries] == [w.ids["bob"]]
    assert framed.content.names[w.ids["bob"]] == "Bob"
    with pytest.raises(NotFound):
        ai.egress_page(w.credential("oscar"), w.org, None)
