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
def exa(fake_exa, ledger):
    fake_exa.add_page("https://example.com/pgvector", "pgvector 0.8 released", "Iterative index scans for filtered search.")
    fake_exa.add_page("https://example.com/cooking", "Sourdough at home", "Flour, water, salt and patience.")
    return ExaWebSearch("exa-key", fake_exa.base_url, 5.0, ledger, (fake_exa.base_url,))


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


def test_provider_errors_are_wrapped_and_recorded(exa, fake_exa, ledger):
    fake_exa.queue_failure(429)
    with pytest.raises(Throttled):
        exa.search("pgvector", 3, SEARCH)
    fake_exa.queue_failure(502)
    with pytest.raises(DependencyUnavailable):
        exa.search("pgvector", 3, SEARCH)
    assert ledger.outcomes == ["http_429", "http_502"]


def test_an_unreachable_exa_is_dependency_unavailable(ledger):
    exa = ExaWebSearch("exa-key", "http://127.0.0.1:9", 2.0, ledger, ("http://127.0.0.1:9",))
    with pytest.raises(DependencyUnavailable, match="cannot be reached"):
        exa.search("anything", 3, SEARCH)
    assert ledger.outcomes == ["connection_error"]


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
