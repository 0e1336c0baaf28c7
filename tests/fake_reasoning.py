"""ScriptedReasoningModel: the ReasoningModel port answering from a script, recording every request.

Each step is a ``ReasoningResult`` or a function of the request that builds one (to answer from what the
tools returned). ``calls("get_record", display_id="DOC-1")`` builds the tool calls of a step, with fresh ids.
A request past the end of the script fails the test.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from tow_core.ai import EgressContext, ReasoningItem, ReasoningRequest, ReasoningResult, ToolCall, Usage

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

    def respond(self, request: ReasoningRequest, context: EgressContext) -> ReasoningResult:
        self.requests.append(request)
        self.contexts.append(context)
        if len(self.requests) > len(self.steps):
            raise AssertionError(f"the script has {len(self.steps)} steps; request {len(self.requests)} came")
        planned = self.steps[len(self.requests) - 1]
        return planned(request) if callable(planned) else planned

    def sent_text(self) -> str:
        """Everything the requests carried, as one string (to check what left)."""
        return "\n".join(f"{r.instructions}\n{r.input_items!r}" for r in self.requests)
