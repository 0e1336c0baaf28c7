"""Pytest fixtures for AI work (registered in tests/conftest.py): the fake OpenAI and Exa servers, and
the environment that points a TOW container at them.

    def test_something(make_container, ai_environ, fake_openai):
        container = make_container(**ai_environ)          # OPENAI_API_KEY etc. set, fakes approved
        fake_openai.queue_response(text="hello")
        ...

Each fake fails the test at teardown if it saw a forbidden request (a Responses call without
store=false, an assistants/threads/vector_stores/conversations path, an Exa call without its key).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_exa import FakeExaServer
from tests.fake_openai import FakeOpenAIServer


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer().start()
    yield server
    server.stop()
    if server.violations:
        pytest.fail("the fake OpenAI server saw forbidden requests:\n" + "\n".join(server.violations))


@pytest.fixture
def fake_exa() -> Iterator[FakeExaServer]:
    server = FakeExaServer().start()
    yield server
    server.stop()
    if server.violations:
        pytest.fail("the fake Exa server saw forbidden requests:\n" + "\n".join(server.violations))


@pytest.fixture
def ai_environ(fake_openai, fake_exa) -> dict[str, str]:
    """Environment variables for ``make_container(**ai_environ)``: keys set, both fakes approved. Saves and
    answers queue no memory extraction runs (``AUTO_EXTRACTION``), so the worker drains only the runs a test
    asks for; tests of extraction turn it on."""
    return {
        "OPENAI_API_KEY": "sk-test-fake-openai",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "EXA_API_KEY": "exa-test-fake",
        "EXA_BASE_URL": fake_exa.base_url,
        "APPROVED_PROVIDERS": f"{fake_openai.base_url},{fake_exa.base_url}",
        "AUTO_EXTRACTION": "false",
    }
