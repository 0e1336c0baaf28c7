"""Memory diff review in the browser (SPEC §4): propose, list, read before/after, approve or reject."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException

from tow_core import knowledge, memory_review
from tow_core.memory_diffs import CreateItem, DiffSource, DiffStatus
from tow_core.records import MEMORY_TYPES, DisplayId
from tow_http.context import SignedIn, in_unit_of_work
from tow_http.memory.shapes import desk, diff_out, summary_out
from tow_http.pages.scopes import default_scope, parse_scope, scope_choices
from tow_http.pages.web import Form, member_names, page, redirect, shell_for


@get("/o/{org_id:int}/memory-diffs", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def diff_list(request: Request, org_id: int, signed_in: NamedDependency[SignedIn], project: str | None = None,
              status: str = "pending", cursor: str | None = None) -> Response:
    shell = shell_for(signed_in, org_id, project, "memory")
    statuses = frozenset({DiffStatus(status)}) if status in set(DiffStatus) else frozenset()
    found = memory_review.list_diffs(desk(signed_in, org_id), statuses, cursor=cursor, limit=50)
    return page(request, "diffs.html", shell=shell, diffs=[summary_out(d) for d in found.items],
                next_cursor=found.next_cursor, status=status, statuses=[s.value for s in DiffStatus],
                memory_types=[(t, t.replace("_", " ")) for t in MEMORY_TYPES], scopes=scope_choices(shell),
                default_scope=default_scope(shell))


@post("/o/{org_id:int}/memory-diffs", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def propose(request: Request, org_id: int, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn]
            ) -> Response:
    """A diff with one new memory item, as a person proposes it for review."""
    d = desk(signed_in, org_id)
    scope, project = knowledge.resolve_scope(d.ws, *parse_scope(form, signed_in.principal.user_id))
    fields = {"memory_type": form.get("memory_type")}
    importance = form.integer("importance", "importance")
    if importance is not None:
        fields["importance"] = importance
    source_id = form.get("source_id").strip()
    view = memory_review.propose_diff(
        d, scope=scope, project=project, operations=[CreateItem(form.get("title"), form.get("body"), fields)],
        source=DiffSource.DOC if source_id.upper().startswith("DOC-") else DiffSource.MANUAL,
        source_id=DisplayId.parse(source_id) if source_id else None, rationale=form.get("rationale"))
    return redirect(request, f"/o/{org_id}/memory-diffs/{view.diff.id}")


@get("/o/{org_id:int}/memory-diffs/{diff_id:int}", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def diff_page(request: Request, org_id: int, diff_id: int, signed_in: NamedDependency[SignedIn],
              project: str | None = None) -> Response:
    shell = shell_for(signed_in, org_id, project, "memory")
    diff = diff_out(memory_review.get_diff(desk(signed_in, org_id), diff_id))
    people = member_names(signed_in, org_id)
    return page(request, "diff.html", shell=shell, diff=diff, people=people)


@post("/o/{org_id:int}/memory-diffs/{diff_id:int}/{decision:str}", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def decide(request: Request, org_id: int, diff_id: int, decision: str, form: NamedDependency[Form],
           signed_in: NamedDependency[SignedIn]) -> Response:
    if decision not in ("approve", "reject"):
        raise NotFoundException(f"no decision {decision}")
    d = desk(signed_in, org_id)
    note = form.get("note")
    if decision == "approve":
        memory_review.approve_diff(d, diff_id, now=signed_in.now, note=note)
    else:
        memory_review.reject_diff(d, diff_id, now=signed_in.now, note=note)
    return redirect(request, f"/o/{org_id}/memory-diffs/{diff_id}")


MEMORY_PAGES = [diff_list, propose, diff_page, decide]
