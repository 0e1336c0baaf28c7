"""OpenAIReasoningModel: core ``ReasoningRequest`` ↔ the OpenAI Responses API (through the gateway).

Only the mapping lives here; the call itself (store=false, retries, ledger) is ``OpenAIGateway``'s.
The ledger row of a call names the records the request says it carries (``request.record_display_ids``)
besides the context's. Reasoning items go out without their provider ids (nothing is kept at OpenAI to
refer to), and ``previous_response_id`` is never sent: each request carries the whole conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tow_adapters.openai_client import OpenAIGateway
from tow_core.ai import (
    EgressContext,
    InputItem,
    InputMessage,
    ReasoningItem,
    ReasoningRequest,
    ReasoningResult,
    TextSink,
    ToolCall,
    ToolOutput,
    ToolSpec,
    Usage,
)
from tow_core.errors import DependencyUnavailable


@dataclass(frozen=True, slots=True)
class ReasoningModels:
    reasoning_model: str
    fast_model: str
    reasoning_effort: str


def input_item(item: InputItem) -> dict[str, Any]:
    if isinstance(item, InputMessage):
        return {"type": "message", "role": item.role, "content": item.text}
    if isinstance(item, ToolCall):
        return {"type": "function_call", "call_id": item.call_id, "name": item.name, "arguments": item.arguments_json}
    if isinstance(item, ToolOutput):
        return {"type": "function_call_output", "call_id": item.call_id, "output": item.output}
    if isinstance(item, ReasoningItem):
        return {"type": "reasoning", "encrypted_content": item.encrypted_content,
                "summary": [{"type": "summary_text", "text": text} for text in item.summary]}
    raise TypeError(f"not an input item: {item!r}")


def function_tool(tool: ToolSpec) -> dict[str, Any]:
    # strict=False: our tool schemas use optional properties, which strict mode rejects.
    return {"type": "function", "name": tool.name, "description": tool.description,
            "parameters": tool.parameters_json_schema, "strict": False}


def response_params(request: ReasoningRequest, models: ReasoningModels) -> tuple[str, dict[str, Any]]:
    """The model to call and the Responses API parameters for ``request`` (never ``store``: the gateway's)."""
    model = models.fast_model if request.fast else models.reasoning_model
    params: dict[str, Any] = {
        "instructions": request.instructions,
        "input": [input_item(item) for item in request.input_items],
        "reasoning": {"effort": request.reasoning_effort or models.reasoning_effort},
    }
    if request.tools:
        params["tools"] = [function_tool(tool) for tool in request.tools]
    if request.include_reasoning:
        params["include"] = ["reasoning.encrypted_content"]
    return model, params


def _reasoning_item(item: Any) -> ReasoningItem | None:
    encrypted = getattr(item, "encrypted_content", None)
    if not encrypted:  # without its encrypted content a reasoning item cannot be resent under store=false
        return None
    return ReasoningItem(encrypted, tuple(part.text for part in getattr(item, "summary", None) or ()))


def reasoning_result(response: Any) -> ReasoningResult:
    """Core result from an SDK ``Response``: the text, the function calls in order, usage."""
    if getattr(response, "status", "completed") == "failed":
        error = getattr(response, "error", None)
        raise DependencyUnavailable(f"OpenAI could not complete the response: {getattr(error, 'message', error)}",
                                    retry_after_seconds=30)
    calls = tuple(
        ToolCall(call_id=item.call_id, name=item.name, arguments_json=item.arguments)
        for item in response.output or ()
        if getattr(item, "type", None) == "function_call"
    )
    reasoning = tuple(
        kept for item in response.output or ()
        if getattr(item, "type", None) == "reasoning" and (kept := _reasoning_item(item)) is not None
    )
    usage = response.usage
    return ReasoningResult(
        output_text=response.output_text or "",
        tool_calls=calls,
        usage=Usage(usage.input_tokens, usage.output_tokens) if usage else Usage(),
        model=response.model or "",
        reasoning_items=reasoning,
    )


class OpenAIReasoningModel:
    def __init__(self, gateway: OpenAIGateway, models: ReasoningModels) -> None:
        self._gateway = gateway
        self._models = models

    def respond(self, request: ReasoningRequest, context: EgressContext, *,
                sink: TextSink | None = None) -> ReasoningResult:
        """With a ``sink`` the call is streamed (``OpenAIGateway.create_response``): same request otherwise,
        same result — built from the final event's response."""
        model, params = response_params(request, self._models)
        ledgered = context.naming(request.record_display_ids)
        return reasoning_result(self._gateway.create_response(model=model, params=params, context=ledgered,
                                                              sink=sink))
