"""SPEC §6, structurally: one module talks to OpenAI, every Responses call sets store=False, and no code
uses the Conversations, Assistants, Threads or Vector Stores APIs (nor server-side conversation state).

TOW's own conversations (issue 13: ``tow_core.conversations``, stored in PostgreSQL) share a name with OpenAI's
Conversations API. Code that holds OpenAI SDK objects lives in the OpenAI adapters only (the SDK is imported by
``openai_client.py`` alone), so there every forbidden name stays forbidden; elsewhere ``conversation(s)`` is the
domain's word, but no call anywhere may pass the Responses API's server-state parameters as keywords."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
CENTRAL = SRC / "tow_adapters" / "openai_client.py"
# Modules whose ``.responses`` is not OpenAI's: the OpenAPI document's operations (``Operation.responses``).
NOT_OPENAI_RESPONSES = {SRC / "tow_http" / "openapi.py"}
FORBIDDEN_NAMES = {"conversations", "conversation", "assistants", "threads", "vector_stores", "previous_response_id"}
OPENAI_ADAPTERS = tuple((SRC / "tow_adapters").glob("openai_*.py"))
DOMAIN_NAMES = {"conversations", "conversation"}  # TOW's own conversations, outside the OpenAI adapters
SERVER_STATE_KEYWORDS = {"conversation", "previous_response_id"}  # Responses parameters: never passed anywhere


def trees() -> dict[Path, ast.AST]:
    return {path: ast.parse(path.read_text(), filename=str(path)) for path in SRC.rglob("*.py")}


def test_only_the_central_module_imports_the_openai_sdk_or_touches_its_endpoints():
    offenders = []
    for path, tree in trees().items():
        for node in ast.walk(tree):
            imported = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            )
            if path != CENTRAL and any(name.split(".")[0] == "openai" for name in imported):
                offenders.append(f"{path.relative_to(SRC)} imports openai")
            touched = node.attr if isinstance(node, ast.Attribute) else None
            if touched == "responses" and path in NOT_OPENAI_RESPONSES:
                continue
            if path != CENTRAL and touched in ("responses", "embeddings"):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} touches .{node.attr}")
    assert not offenders, offenders


def test_every_responses_call_sets_store_false_as_a_fixed_keyword():
    calls = [
        node for node in ast.walk(ast.parse(CENTRAL.read_text()))
        if isinstance(node, ast.Call) and "responses" in ast.unparse(node.func) and ast.unparse(node.func).endswith(
            ".create")
    ]
    assert len(calls) == 1, "exactly one Responses call site"
    store = [k for k in calls[0].keywords if k.arg == "store"]
    assert len(store) == 1 and isinstance(store[0].value, ast.Constant) and store[0].value.value is False
    # store comes after **params, so nothing in params can override it (and params naming it is refused).
    assert calls[0].keywords[-1].arg == "store"


def refusal_list_nodes(tree: ast.AST) -> set[int]:
    """The nodes of the central module's ``STATE_KEEPING_PARAMETERS``: the one place allowed to name
    ``previous_response_id`` and ``conversation`` (to refuse them)."""
    return {
        id(inner) for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["STATE_KEEPING_PARAMETERS"]
        for inner in ast.walk(node.value)
    }


def test_no_code_names_conversation_assistant_thread_or_vector_store_apis():
    offenders = []
    for path, tree in trees().items():
        refusals = refusal_list_nodes(tree) if path == CENTRAL else set()
        for node in ast.walk(tree):
            if id(node) in refusals:
                continue
            names = []
            if isinstance(node, ast.Attribute):
                names.append(node.attr)
            elif isinstance(node, ast.keyword) and node.arg:
                names.append(node.arg)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.append(node.value)
            forbidden = FORBIDDEN_NAMES if path in OPENAI_ADAPTERS else FORBIDDEN_NAMES - DOMAIN_NAMES
            if isinstance(node, ast.keyword):
                forbidden = forbidden | SERVER_STATE_KEYWORDS
            offenders += [f"{path.relative_to(SRC)}:{getattr(node, 'lineno', '?')} {n}" for n in names
                          if n in forbidden]
    assert OPENAI_ADAPTERS and CENTRAL in OPENAI_ADAPTERS
    assert not offenders, offenders
