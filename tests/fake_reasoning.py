"""ScriptedReasoningModel: the ReasoningModel port answering from a script, recording every request.

Each step is a ``ReasoningResult`` or a function of the request that builds one (to answer from what the
tools returned). ``calls("get_record", display_id="DOC-1")`` builds the tool calls of a step, with fresh ids.
A request past the end of the script fails the test. Given a sink (a streamed call), a step's text goes to it
word by word before the step is returned, as the OpenAI adapter streams it.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

from tow_core.ai import (
    EgressContext,
    ReasoningItem,
    ReasoningRequest,
    ReasoningResult,
    TextSink,
    ToolCall,
    Usage,
)

Step = ReasoningResult | Callable[[ReasoningRequest], ReasoningResult]
_ids = itertools.count(1)


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(f"call_{next(_ids)}", name, json.dumps(arguments))


STEP_USAGE = Usage(10, 5)


def step(text: str = "", *calls: ToolCall, reasoning: str | None = None, usage: Usage = STEP_USAGE
         ) -> ReasoningResult:
    items = (ReasoningItem(reasoning),) if reasoning else ()
    return ReasoningResult(text, tuple(calls), usage, "scripted-model", items)


class ScriptedReasoningModel:
    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[ReasoningRequest] = []
        self.contexts: list[EgressContext] = []

    def respond(self, request: ReasoningRequest, context: EgressContext, *,
                sink: TextSink | None = None) -> ReasoningResult:
        self.requests.append(request)
        self.contexts.append(context)
        if len(self.requests) > len(self.steps):
            raise AssertionError(f"the script has {len(self.steps)} steps; request {len(self.requests)} came")
        planned = self.steps[len(self.requests) - 1]
        result = planned(request) if callable(planned) else planned
        if sink is not None:
            for piece in re.findall(r"\s*\S+\s*", result.output_text):
                sink.delta(piece)
        return result

    def sent_text(self) -> str:
        """Everything the requests carried, as one string (to check what left)."""
        return "\n".join(f"{r.instructions}\n{r.input_items!r}" for r in self.requests)
