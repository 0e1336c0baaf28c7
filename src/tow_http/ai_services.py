"""What the HTTP layer gets for AI (SPEC §6): the ports, the egress ledger and a secret-free status.

Built by the composition root; when OPENAI_API_KEY / EXA_API_KEY are unset the ports are the core's
"unconfigured" implementations and ``embedding_model`` is None (search falls back to keyword).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tow_core.ai import EmbeddingModel, ReasoningModel, WebSearch
from tow_core.egress import EgressLedger


class AiStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Which AI features are on and where data would go; never a key."""

    configured: bool
    message: str | None
    openai_base_url: str
    openai_approved: bool
    reasoning_model: str
    fast_model: str
    reasoning_effort: str
    embedding_model: str
    embedding_dim: int
    web_search_configured: bool
    web_search_message: str | None
    exa_base_url: str
    exa_approved: bool
    approved_providers: tuple[str, ...]


@dataclass(frozen=True)
class AiServices:
    reasoning_model: ReasoningModel
    embedding_model: EmbeddingModel | None
    web_search: WebSearch
    egress_ledger: EgressLedger
    status: AiStatus
