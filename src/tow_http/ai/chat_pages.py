"""Chat with the assistant in the browser (SPEC §6 workflow 1, issue 13): one's conversations, starting one in
the picked project's scope, asking, reading answers with their citations, deleting.

An answer is Markdown a model wrote (a prompt injection in a record or web page may have steered it), so it is
rendered with ``render_chat_markdown``: no raw HTML, no image loaded, every external link shows its host.
While the latest question has no answer, a small script (static/chat_stream.js) follows the run's events
(server-sent events) and shows the text as it comes, as text; without it the turns poll their fragment every
2 seconds (HTMX) until the answer is there or the run ended without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from markupsafe import Markup

from tow_core.conversations import Turn, TurnRole
from tow_core.unit_of_work import Credential
from tow_core.use_cases.chat import ChatUseCases
from tow_core.use_cases.chat_pages import ChatPageUseCases, ChatThread
from tow_core.use_cases.conversations import ConversationUseCases
from tow_http.pages.markdown import render_chat_markdown, safe_link
from tow_http.pages.web import Form, Shell, page, redirect


@dataclass(frozen=True)
class ToolUse:
    tool: str
    records: list[str]
    failed: bool


@dataclass(frozen=True)
class ShownTurn:
    """A turn as the page shows it; ``html`` is the answer rendered safely (a question is shown as text)."""

    turn: Turn
    html: Markup | None
    tools: list[ToolUse]
    dropped: list[tuple[str, str]]  # (what was cited, why it was dropped)
    web: list[tuple[int, str | None, str]]  # (ref, the link if it is http(s) or mailto, title)
    actions: list[dict[str, Any]]  # what the assistant proposed; the user applies each (never applied for them)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.turn, name)


def _shown(turn: Turn) -> ShownTurn:
    if turn.role is TurnRole.USER:
        return ShownTurn(turn, None, [], [], [], [])
    html = Markup(render_chat_markdown(turn.text))  # noqa: S704 - escaped by markdown-it, see the module docstring
    tools = [ToolUse(str(a.get("tool", "")), [str(r) for r in a.get("records", ())], bool(a.get("error")))
             for a in turn.tool_activity]
    dropped = [(str(d["display_id"]) if "display_id" in d else f"web source {d.get('web_ref')}",
                str(d.get("reason", "")).replace("_", " ")) for d in turn.dropped_citations]
    web = [(w.get("ref"), str(w.get("url", "")) if safe_link(str(w.get("url", ""))) else None,
            str(w.get("title") or w.get("url", ""))) for w in turn.web_sources]
    actions = [dict(a["pending_action"]) for a in turn.tool_activity if a.get("pending_action")]
    return ShownTurn(turn, html, tools, dropped, web, actions)


def _thread_context(thread: ChatThread, org_id: int, project_key: str | None) -> dict[str, Any]:
    suffix = f"?{urlencode({'project': project_key})}" if project_key else ""
    return {"conversation": thread.conversation, "turns": [_shown(t) for t in thread.turns],
            "pending": thread.pending, "ai_configured": thread.ai_configured, "org_id": org_id,
            "thread_url": f"/o/{org_id}/chat/{thread.conversation.id}",
            "poll_url": f"/o/{org_id}/chat/{thread.conversation.id}/turns{suffix}"}


def _link(org_id: int, path: str, project: str) -> str:
    project = project.strip()
    return f"/o/{org_id}/chat{path}" + (f"?{urlencode({'project': project})}" if project else "")


@get("/o/{org_id:int}/chat", sync_to_thread=True, include_in_schema=False)
def chat_list(request: Request, org_id: int, caller: NamedDependency[Credential],
              chat_pages: NamedDependency[ChatPageUseCases], project: str | None = None,
              cursor: str | None = None) -> Response:
    framed = chat_pages.list_page(caller, org_id, project, cursor=cursor or None)
    shell = Shell(framed.frame, "chat")
    return page(request, "chat_list.html", shell=shell, conversations=framed.content.conversations,
                next_cursor=framed.content.next_cursor, ai_configured=framed.content.ai_configured,
                project_keys={p.id: p.key for p in shell.projects})


@post("/o/{org_id:int}/chat", sync_to_thread=True, include_in_schema=False)
def start(request: Request, org_id: int, form: NamedDependency[Form], caller: NamedDependency[Credential],
          conversations: NamedDependency[ConversationUseCases]) -> Response:
    """A new conversation over the picked project (the form's hidden ``project``), or all projects."""
    project = form.get("project").strip()
    started = conversations.start(caller, org_id, project or None, form.get("title"))
    return redirect(request, _link(org_id, f"/{started.id}", project))


@get("/o/{org_id:int}/chat/{conversation_id:int}", sync_to_thread=True, include_in_schema=False)
def conversation_page(request: Request, org_id: int, conversation_id: int,
                      caller: NamedDependency[Credential], chat_pages: NamedDependency[ChatPageUseCases],
                      project: str | None = None) -> Response:
    framed = chat_pages.conversation_page(caller, org_id, project, conversation_id)
    shell = Shell(framed.frame, "chat")
    return page(request, "chat.html", shell=shell, project_keys={p.id: p.key for p in shell.projects},
                **_thread_context(framed.content, org_id, shell.project.key if shell.project else None))


@get("/o/{org_id:int}/chat/{conversation_id:int}/turns", sync_to_thread=True, include_in_schema=False)
def turns_fragment(request: Request, org_id: int, conversation_id: int, caller: NamedDependency[Credential],
                   chat_pages: NamedDependency[ChatPageUseCases], project: str | None = None) -> Response:
    """The turns alone, for the page's polling while an answer is on its way."""
    thread = chat_pages.turns(caller, org_id, conversation_id)
    return page(request, "_chat_turns.html", **_thread_context(thread, org_id, project))


@post("/o/{org_id:int}/chat/{conversation_id:int}/questions", sync_to_thread=True, include_in_schema=False)
def ask(request: Request, org_id: int, conversation_id: int, form: NamedDependency[Form],
        caller: NamedDependency[Credential], chat: NamedDependency[ChatUseCases]) -> Response:
    chat.ask(caller, org_id, conversation_id, form.get("text"))
    return redirect(request, _link(org_id, f"/{conversation_id}", form.get("project")) + "#answer")


@post("/o/{org_id:int}/chat/{conversation_id:int}/delete", sync_to_thread=True, include_in_schema=False)
def delete(request: Request, org_id: int, conversation_id: int, form: NamedDependency[Form],
           caller: NamedDependency[Credential], conversations: NamedDependency[ConversationUseCases]
           ) -> Response:
    conversations.delete(caller, org_id, conversation_id)
    return redirect(request, _link(org_id, "", form.get("project")))


@post("/o/{org_id:int}/chat/{conversation_id:int}/memory-extraction", sync_to_thread=True, include_in_schema=False)
def memory_extraction(request: Request, org_id: int, conversation_id: int, form: NamedDependency[Form],
                      caller: NamedDependency[Credential],
                      conversations: NamedDependency[ConversationUseCases]) -> Response:
    """Turn proposing memory changes after this conversation's answers on or off (an unticked box is absent)."""
    conversations.update(caller, org_id, conversation_id, memory_extraction=form.get("memory_extraction") == "on")
    return redirect(request, _link(org_id, f"/{conversation_id}", form.get("project")) + "#memory-extraction")


@post("/o/{org_id:int}/chat/{conversation_id:int}/actions/{action_id:str}/apply", sync_to_thread=True,
      include_in_schema=False)
def apply_action(request: Request, org_id: int, conversation_id: int, action_id: str, form: NamedDependency[Form],
                 caller: NamedDependency[Credential], chat: NamedDependency[ChatUseCases]) -> Response:
    """Apply a proposal of the assistant as yourself: a ticket is created, a memory change becomes a pending diff."""
    chat.apply_action(caller, org_id, conversation_id, action_id)
    return redirect(request, _link(org_id, f"/{conversation_id}", form.get("project")) + "#actions")


CHAT_PAGES = [chat_list, start, conversation_page, turns_fragment, ask, delete, memory_extraction, apply_action]
