"""The inbox over HTTP (issue 14 item 3): what waits for you, and dismissing a failed run of yours."""

from __future__ import annotations

from typing import Annotated

from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from tow_core.unit_of_work import Credential
from tow_core.use_cases.inbox import InboxUseCases
from tow_http.inbox.shapes import RULES, InboxCountsOut, InboxOut, counts_out, inbox_out

ProjectKey = Annotated[str | None, QueryParameter(
    name="project", max_length=10, description="a project key you read: only that project's items (absent: every "
    "scope, with your conversations and runs over all projects)")]

BASE = "/organisations/{org_id:int}/inbox"


@get(BASE, summary="Your inbox: what waits for you to review, apply or dismiss", description=RULES,
     sync_to_thread=True)
def get_inbox(org_id: int, caller: NamedDependency[Credential], inbox: NamedDependency[InboxUseCases],
              project: ProjectKey = None) -> InboxOut:
    return inbox_out(org_id, inbox.inbox(caller, org_id, project))


@get(f"{BASE}/count", summary="How many items wait in your inbox",
     description="The counts of `GET .../inbox` without the items: what the page shell shows beside \"Inbox\", "
     "refetched when a live stream (`GET .../live`) sends `nudge`. The same access rules; the same `project` filter.",
     sync_to_thread=True)
def get_inbox_count(org_id: int, caller: NamedDependency[Credential], inbox: NamedDependency[InboxUseCases],
                    project: ProjectKey = None) -> InboxCountsOut:
    return counts_out(inbox.counts(caller, org_id, project))


@post(f"{BASE}/runs/{{run_id:int}}/dismiss", summary="Dismiss a failed agent run of yours from the inbox",
      description="The run leaves your inbox; it is kept, and the agent-run listing still shows it. Only the "
      "run's owner may dismiss it (anyone else: 404), and only a failed run that is not dismissed yet (else 409).",
      status_code=HTTP_204_NO_CONTENT, sync_to_thread=True)
def dismiss_run(org_id: int, run_id: int, caller: NamedDependency[Credential],
                inbox: NamedDependency[InboxUseCases]) -> None:
    inbox.dismiss_run(caller, org_id, run_id)


inbox_router = Router(path="/api", route_handlers=[get_inbox, get_inbox_count, dismiss_run], tags=["inbox"])
