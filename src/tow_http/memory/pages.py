"""Memory diff review in the browser (SPEC §4): propose, list, read before/after, approve or reject."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException

from tow_core.memory_diffs import CreateItem, DiffSource, DiffStatus
from tow_core.records import MEMORY_TYPES, DisplayId
from tow_core.unit_of_work import Credential
from tow_core.use_cases.memory import MemoryReviewUseCases
from tow_http.memory.shapes import diff_out, summary_out
from tow_http.pages.scopes import default_scope, parse_scope, scope_choices
from tow_http.pages.web import Form, Shell, page, redirect


@get("/o/{org_id:int}/memory-diffs", sync_to_thread=True, include_in_schema=False)
def diff_list(request: Request, org_id: int, caller: NamedDependency[Credential],
              memory: NamedDependency[MemoryReviewUseCases], project: str | None = None, status: str = "pending",
              cursor: str | None = None) -> Response:
    statuses = frozenset({DiffStatus(status)}) if status in set(DiffStatus) else frozenset()
    framed = memory.list_page(caller, org_id, project, statuses, cursor=cursor, limit=50)
    shell = Shell(framed.frame, "memory")
    return page(request, "diffs.html", shell=shell, diffs=[summary_out(d) for d in framed.content.diffs],
                next_cursor=framed.content.next_cursor, status=status, statuses=[s.value for s in DiffStatus],
                memory_types=[(t, t.replace("_", " ")) for t in MEMORY_TYPES], scopes=scope_choices(shell),
                default_scope=default_scope(shell))


@post("/o/{org_id:int}/memory-diffs", sync_to_thread=True, include_in_schema=False)
def propose(request: Request, org_id: int, form: NamedDependency[Form], caller: NamedDependency[Credential],
            memory: NamedDependency[MemoryReviewUseCases]) -> Response:
    """A diff with one new memory item, as a person proposes it for review."""
    kind, ref = parse_scope(form, None)  # "Private — only you": the use case names the caller's own scope
    fields = {"memory_type": form.get("memory_type")}
    importance = form.integer("importance", "importance")
    if importance is not None:
        fields["importance"] = importance
    source_id = form.get("source_id").strip()
    diff = memory.propose(
        caller, org_id, kind, ref, [CreateItem(form.get("title"), form.get("body"), fields)],
        source=DiffSource.DOC if source_id.upper().startswith("DOC-") else DiffSource.MANUAL,
        source_id=DisplayId.parse(source_id) if source_id else None, rationale=form.get("rationale"),
        own_private_scope=True)
    return redirect(request, f"/o/{org_id}/memory-diffs/{diff.summary.id}")


@get("/o/{org_id:int}/memory-diffs/{diff_id:int}", sync_to_thread=True, include_in_schema=False)
def diff_page(request: Request, org_id: int, diff_id: int, caller: NamedDependency[Credential],
              memory: NamedDependency[MemoryReviewUseCases], project: str | None = None) -> Response:
    framed = memory.diff_page(caller, org_id, project, diff_id)
    return page(request, "diff.html", shell=Shell(framed.frame, "memory"), diff=diff_out(framed.content.diff),
                people=framed.content.people, needs_second_reviewer=framed.content.needs_second_reviewer)


@post("/o/{org_id:int}/memory-diffs/{diff_id:int}/{decision:str}", sync_to_thread=True, include_in_schema=False)
def decide(request: Request, org_id: int, diff_id: int, decision: str, form: NamedDependency[Form],
           caller: NamedDependency[Credential], memory: NamedDependency[MemoryReviewUseCases]) -> Response:
    if decision not in ("approve", "reject"):
        raise NotFoundException(f"no decision {decision}")
    decide_as = memory.approve if decision == "approve" else memory.reject
    decide_as(caller, org_id, diff_id, note=form.get("note"))
    return redirect(request, f"/o/{org_id}/memory-diffs/{diff_id}")


MEMORY_PAGES = [diff_list, propose, diff_page, decide]
