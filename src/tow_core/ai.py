"""Ports to the AI and web providers (SPEC §6). Core types only cross them; adapters own the vendors.

Every call carries an ``EgressContext`` so that the adapter boundary can write the data-egress ledger:
who acted, for which organisation, why, and the display IDs of every record whose content is sent. A
``ReasoningRequest`` also names the records whose content it holds (``record_display_ids``); the adapter
adds them to the context's, so the ledger row of a call can never name fewer records than the request sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, Protocol

from tow_core.errors import AiNotConfigured, WebSearchNotConfigured


class EgressPurpose(StrEnum):
    CHAT = "chat"
    EXTRACTION = "extraction"
    SNAPSHOT = "snapshot"
    EMBEDDING = "embedding"
    WEB_SEARCH = "web_search"
    WEB_FETCH = "web_fetch"


@dataclass(frozen=True, slots=True)
class EgressContext:
    """Why data leaves the deployment and on whose behalf; never the content itself."""

    purpose: EgressPurpose
    acting_user_id: int | None  # None: background work not started by a person (e.g. re-embedding)
    organisation_id: int | None
    record_display_ids: tuple[str, ...] = ()
    # Optional, for embedding calls: the display ID of the record each text comes from, one per text.
    # When given, each batch request's ledger row names only the records in that batch.
    text_record_ids: tuple[str, ...] = ()

    def for_texts(self, indices: range) -> EgressContext:
        """The context of a request that sends only the texts at ``indices``."""
        if not self.text_record_ids:
            return self
        sent = tuple(dict.fromkeys(self.text_record_ids[i] for i in indices))
        return replace(self, record_display_ids=sent, text_record_ids=())

    def naming(self, display_ids: Sequence[str]) -> EgressContext:
        """This context also naming ``display_ids`` (the records a request says it carries), in order, once."""
        if not display_ids:
            return self
        return replace(self, record_display_ids=tuple(dict.fromkeys((*self.record_display_ids, *display_ids))))


# --- reasoning (OpenAI Responses API in the adapter) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputMessage:
    role: Literal["user", "assistant", "developer"]
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments_json: str


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """The answer to an earlier ``ToolCall``, sent back to the model in the next round."""

    call_id: str
    output: str


@dataclass(frozen=True, slots=True)
class ReasoningItem:
    """A reasoning model's encrypted chain of thought from one response (``include=reasoning.encrypted_content``).

    Nothing is stored at the provider (store=false), so a tool loop resends these with the next round to let
    the model keep its chain. They carry no provider id on purpose: an id refers to provider-side state,
    which TOW never asks to keep. They belong to one run; a later turn starts without them."""

    encrypted_content: str
    summary: tuple[str, ...] = ()


InputItem = InputMessage | ToolCall | ToolOutput | ReasoningItem


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters_json_schema: dict[str, object]


@dataclass(frozen=True, slots=True)
class ReasoningRequest:
    instructions: str
    input_items: Sequence[InputItem]
    tools: Sequence[ToolSpec] = ()
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None  # None: configured
    fast: bool = False  # use the configured fast model instead of the reasoning model
    # The display IDs of every record whose content is somewhere in this request (tool results, quoted
    # history): the adapter writes them into the call's ledger row.
    record_display_ids: tuple[str, ...] = ()
    # Ask for the encrypted reasoning items back (ReasoningResult.reasoning_items), to resend next round.
    include_reasoning: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True, slots=True)
class ReasoningResult:
    output_text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    reasoning_items: tuple[ReasoningItem, ...] = ()  # only when the request asked (include_reasoning)


class TextSink(Protocol):
    """Where a streamed call's answer text goes as it is written (``ReasoningModel.respond(..., sink=)``).

    ``delta`` gets each piece of the output text in order; ``discard`` says that the text this call gave so
    far is void (the adapter retries the call, and the retry's text starts again from nothing). The result
    ``respond`` returns is the whole answer either way: a sink only shows it early."""

    def delta(self, text: str) -> None: ...

    def discard(self) -> None: ...


class ReasoningModel(Protocol):
    def respond(self, request: ReasoningRequest, context: EgressContext, *,
                sink: TextSink | None = None) -> ReasoningResult:
        """The model's answer to ``request``; with a ``sink``, its text is also streamed there as it comes."""
        ...


# --- embeddings -------------------------------------------------------------------------------------


class EmbeddingModel(Protocol):
    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str], context: EgressContext) -> list[list[float]]:
        """One vector of ``dimension`` floats per text, in order."""
        ...


# --- web tools (Exa in the adapter) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebResult:
    url: str
    title: str
    snippet: str = ""
    published: str | None = None


@dataclass(frozen=True, slots=True)
class WebPage:
    url: str
    title: str
    text: str


class WebSearch(Protocol):
    def search(self, query: str, limit: int, context: EgressContext) -> list[WebResult]: ...

    def fetch(self, url: str, context: EgressContext) -> WebPage: ...


# --- AI switched off ----------------------------------------------------------------------------------
# The composition root hands these out when the operator has not configured a provider: the ports stay
# in place, so callers need no special case, and the refusal names what to set (SPEC §6).

AI_NOT_CONFIGURED_MESSAGE = "AI is not configured: set OPENAI_API_KEY"
WEB_SEARCH_NOT_CONFIGURED_MESSAGE = "web search is not configured: set EXA_API_KEY"


class UnconfiguredReasoningModel:
    def respond(self, request: ReasoningRequest, context: EgressContext, *,
                sink: TextSink | None = None) -> ReasoningResult:
        raise AiNotConfigured(AI_NOT_CONFIGURED_MESSAGE)


class UnconfiguredWebSearch:
    """Without EXA_API_KEY the web tools still exist; each call answers a configuration error that the
    tool layer passes to the model and the user (``str(error)`` / ``error.message`` is the text)."""

    def search(self, query: str, limit: int, context: EgressContext) -> list[WebResult]:
        raise WebSearchNotConfigured(WEB_SEARCH_NOT_CONFIGURED_MESSAGE)

    def fetch(self, url: str, context: EgressContext) -> WebPage:
        raise WebSearchNotConfigured(WEB_SEARCH_NOT_CONFIGURED_MESSAGE)
