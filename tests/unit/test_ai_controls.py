"""AI switched off and the approved-provider rule, through the app and the pure policy."""

from __future__ import annotations

import msgspec
import pytest
from litestar import Router, get
from litestar.di import NamedDependency, Provide
from litestar.testing import TestClient

from tests.fake_egress import InMemoryEgressLedger
from tow_core.ai import (
    EgressContext,
    EgressPurpose,
    InputMessage,
    ReasoningRequest,
    UnconfiguredReasoningModel,
    UnconfiguredWebSearch,
)
from tow_core.egress import ProviderEndpoint, is_approved
from tow_http.ai_services import AiServices, AiStatus
from tow_http.app import create_app
from tow_http.config import Settings
from tow_http.context import Services
from tow_http.session_cookie import SessionCookieSigner

OPENAI = ProviderEndpoint("openai", "https://api.openai.com/v1", "api.openai.com")
GATEWAY = ProviderEndpoint("openai", "https://llm-gateway.internal/v1", "api.openai.com")


@pytest.mark.parametrize(
    ("endpoint", "approved", "allowed"),
    [
        (OPENAI, ("openai", "exa"), True),                      # a name approves the provider's own API
        (GATEWAY, ("openai", "exa"), False),                    # ... not wherever its base URL points
        (GATEWAY, ("https://llm-gateway.internal/v1/",), True),  # a listed URL approves exactly that URL
        (GATEWAY, ("https://LLM-gateway.internal/v1",), True),
        (GATEWAY, ("https://llm-gateway.internal/v2",), False),
        (OPENAI, ("exa",), False),
        (OPENAI, (), False),
    ],
)
def test_approved_providers(endpoint, approved, allowed):
    assert is_approved(endpoint, approved) is allowed


@get("/reason", sync_to_thread=False)
def reason(services: NamedDependency[Services]) -> dict:
    context = EgressContext(EgressPurpose.CHAT, acting_user_id=1, organisation_id=1)
    services.ai.reasoning_model.respond(ReasoningRequest("x", [InputMessage("user", "hi")]), context)
    return {}


def test_without_openai_api_key_ai_actions_answer_503_ai_not_configured():
    status = AiStatus(configured=False, message="AI is not configured: set OPENAI_API_KEY", openai_base_url="",
                      openai_approved=True, reasoning_model="m", fast_model="f", reasoning_effort="low",
                      embedding_model="e", embedding_dim=8, web_search_configured=False, web_search_message=None,
                      exa_base_url="", exa_approved=True, approved_providers=())
    services = Services(
        settings=msgspec.convert({}, Settings), transaction=lambda: pytest.fail("no database here"),
        sign_in_log=None, password_hasher=None, cookie_signer=SessionCookieSigner("k" * 40),
        ai=AiServices(UnconfiguredReasoningModel(), None, UnconfiguredWebSearch(), InMemoryEgressLedger(), status),
    )
    probe = Router(path="/api/probe", route_handlers=[reason],
                   dependencies={"services": Provide(lambda: services, sync_to_thread=False)})
    app = create_app(services=services, schema_inspector=None, extra_routers=[probe])
    response = TestClient(app).get("/api/probe/reason")
    assert response.status_code == 503
    assert response.json() == {"error": {"code": "ai_not_configured",
                                         "message": "AI is not configured: set OPENAI_API_KEY"}}
