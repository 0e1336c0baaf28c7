"""The real exa-py adapter against the local fake Exa server (tests/fake_exa.py), and the web tools
without EXA_API_KEY."""

from __future__ import annotations

import pytest

from tests.fake_egress import InMemoryEgressLedger
from tow_adapters.exa_web_search import ExaWebSearch
from tow_core.ai import EgressContext, EgressPurpose, UnconfiguredWebSearch
from tow_core.errors import (
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    ProviderNotApproved,
    Throttled,
    WebSearchNotConfigured,
)

SEARCH = EgressContext(EgressPurpose.WEB_SEARCH, acting_user_id=4, organisation_id=2)
FETCH = EgressContext(EgressPurpose.WEB_FETCH, acting_user_id=4, organisation_id=2, record_display_ids=("TKT-3",))


@pytest.fixture
def ledger():
    return InMemoryEgressLedger()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def exa(fake_exa, ledger, sleeps):
    fake_exa.add_page("https://example.com/pgvector", "pgvector 0.8 released", "Iterative index scans for filtered search.")
    fake_exa.add_page("https://example.com/cooking", "Sourdough at home", "Flour, water, salt and patience.")
    return ExaWebSearch("exa-key", fake_exa.base_url, 5.0, ledger, (fake_exa.base_url,), sleep=sleeps.append,
                        jitter=lambda: 0.5)


def test_search_returns_core_results_and_sends_the_key(exa, fake_exa, ledger):
    results = exa.search("pgvector filtered search", 5, SEARCH)
    assert [(r.url, r.title) for r in results] == [("https://example.com/pgvector", "pgvector 0.8 released")]
    assert results[0].snippet.startswith("Iterative index scans") and results[0].published.startswith("2026-01-02")
    [sent] = fake_exa.requests
    assert sent.path == "/search" and sent.body["query"] == "pgvector filtered search" and sent.body["numResults"] == 5
    assert sent.headers.get("x-api-key") == "exa-key"
    [row] = ledger.rows
    assert (row.provider, row.model, row.purpose, row.outcome) == ("exa", "search", EgressPurpose.WEB_SEARCH, "ok")
    assert row.request_bytes == sent.body_bytes and row.response_bytes > 0


def test_fetch_returns_the_page_text_and_names_the_records_sent(exa, fake_exa, ledger):
    page = exa.fetch("https://example.com/cooking", FETCH)
    assert (page.title, page.text) == ("Sourdough at home", "Flour, water, salt and patience.")
    assert fake_exa.requests[0].path == "/contents"
    assert ledger.rows[0].record_display_ids == ("TKT-3",) and ledger.rows[0].purpose is EgressPurpose.WEB_FETCH
    with pytest.raises(NotFound, match="could not be fetched"):
        exa.fetch("https://example.com/missing", FETCH)
    with pytest.raises(InvalidInput):
        exa.fetch("file:///etc/passwd", FETCH)
    assert len(ledger.rows) == len(fake_exa.requests) == 2  # the refused URL never left


def test_429_and_5xx_are_retried_with_backoff_and_jitter_one_ledger_row_per_attempt(exa, fake_exa, ledger, sleeps):
    fake_exa.queue_failure(429)
    fake_exa.queue_failure(500)
    results = exa.search("pgvector", 3, SEARCH)
    assert [r.url for r in results] == ["https://example.com/pgvector"]
    assert len(fake_exa.requests) == 3 and ledger.outcomes == ["http_429", "http_500", "ok"]
    assert all(row.request_bytes == fake_exa.requests[0].body_bytes for row in ledger.rows)
    # The OpenAI gateway's policy: 0.5 s doubling, "equal jitter" (0.5 → three quarters of the ceiling).
    assert sleeps == [0.375, 0.75]


def test_exhausted_retries_raise_the_wrapped_error(exa, fake_exa, ledger, sleeps):
    fake_exa.queue_failure(429, times=4)
    with pytest.raises(Throttled):
        exa.search("pgvector", 3, SEARCH)
    assert ledger.outcomes == ["http_429"] * 4 and sleeps == [0.375, 0.75, 1.5]
    fake_exa.queue_failure(502, times=4)
    with pytest.raises(DependencyUnavailable, match="Exa answered 502"):
        exa.fetch("https://example.com/cooking", FETCH)
    assert ledger.outcomes[4:] == ["http_502"] * 4


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_request_exa_refuses_is_not_retried(exa, fake_exa, ledger, sleeps, status):
    fake_exa.queue_failure(status)
    with pytest.raises((InvalidInput, DependencyUnavailable)):
        exa.search("pgvector", 3, SEARCH)
    assert ledger.outcomes == [f"http_{status}"] and sleeps == [] and len(fake_exa.requests) == 1


def test_an_unreachable_exa_is_retried_then_dependency_unavailable(ledger, sleeps):
    exa = ExaWebSearch("exa-key", "http://127.0.0.1:9", 2.0, ledger, ("http://127.0.0.1:9",), sleep=sleeps.append,
                       jitter=lambda: 0.0)
    with pytest.raises(DependencyUnavailable, match="cannot be reached"):
        exa.search("anything", 3, SEARCH)
    assert ledger.outcomes == ["connection_error"] * 4 and sleeps == [0.25, 0.5, 1.0]


def test_an_unapproved_exa_endpoint_is_refused_and_recorded(fake_exa, ledger):
    exa = ExaWebSearch("exa-key", fake_exa.base_url, 5.0, ledger, ("openai", "exa"))
    with pytest.raises(ProviderNotApproved, match="ai.approved_providers"):
        exa.search("pgvector", 3, SEARCH)
    assert fake_exa.requests == [] and ledger.outcomes == ["provider_not_approved"]


def test_without_exa_api_key_the_tools_answer_a_configuration_error_naming_the_variable():
    tools = UnconfiguredWebSearch()
    for call in (lambda: tools.search("x", 3, SEARCH), lambda: tools.fetch("https://example.com", FETCH)):
        with pytest.raises(WebSearchNotConfigured) as raised:
            call()
        assert raised.value.message == "web search is not configured: set EXA_API_KEY"
        assert raised.value.code == "web_search_not_configured"
