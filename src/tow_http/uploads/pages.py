"""Files on records in the browser (SPEC §5): attach a file to a record you can write, detach it.
Downloads use the upload routes' own link (``/api/uploads/{id}/content``), which checks access on every
request and sends files as attachments.

The file is streamed from the multipart body to the upload store like the JSON route does (with no
database connection held meanwhile); the form's CSRF token comes before the file in the body and is
checked before a single file byte is stored.
"""

from __future__ import annotations

from collections.abc import Callable

from anyio import to_thread
from litestar import Request, Response, post
from litestar.di import NamedDependency
from multipart import parse_options_header

from tow_core import attachments, knowledge
from tow_core.access import Principal, can_write_scope
from tow_core.attachments import UploadDesk
from tow_core.errors import AccessDenied, InvalidInput
from tow_core.records import DisplayId
from tow_http.context import (
    Services,
    SignedIn,
    Stores,
    in_unit_of_work,
    signed_in_transaction,
    upload_desk,
    upload_services,
)
from tow_http.multipart import FILE_FIELD, MULTIPART_OVERHEAD, file_after_token, pull_body
from tow_http.pages.csrf import token_is_valid
from tow_http.pages.web import Form, redirect

# Checks, in a short transaction, that the signed-in caller may send this file (raises if not).
CheckCaller = Callable[[Stores, Principal], None]
# Records the received file as an upload and puts it to use, in the transaction that commits both.
KeepFile = Callable[[UploadDesk, str, attachments.ReceivedFile], None]


async def store_form_file(request: Request, services: Services, org_id: int, *, noun: str,
                          check: CheckCaller, keep: KeepFile) -> None:
    """A file sent with a page form, with no database connection held while the body streams (like the
    upload route): ``check`` the caller in a short transaction (refused before a byte is read), stream the
    file into the store after the form's CSRF token, then ``keep`` it in a second transaction with the
    caller authenticated afresh. A file that is not kept is deleted again: no row names it."""
    store, images = upload_services(services)
    max_bytes = services.settings.uploads.upload_max_bytes
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    if media_type != "multipart/form-data" or not options.get("boundary"):
        raise InvalidInput(f"send the {noun} with the page's form", field=FILE_FIELD)

    def checked_caller() -> Principal:
        with signed_in_transaction(request, services) as signed_in:
            check(signed_in, signed_in.principal)
            return signed_in.principal

    def receive(principal: Principal) -> tuple[str, attachments.ReceivedFile]:
        body = pull_body(request.stream(), max_bytes=max_bytes + MULTIPART_OVERHEAD)
        name, chunks = file_after_token(body, options["boundary"],
                                        lambda token: token_is_valid(request, services, token))
        return name, attachments.receive_file(principal, store, images, org_id=org_id, chunks=chunks,
                                              max_bytes=max_bytes)

    def record_and_keep(name: str, received: attachments.ReceivedFile) -> None:
        try:
            with signed_in_transaction(request, services) as fresh:  # revoked meanwhile: 401
                keep(UploadDesk(fresh.principal, fresh.uploads, store, fresh.records, fresh.directory, fresh.now),
                     name, received)
        except BaseException:
            store.delete(received.stored.storage_name)  # not committed: no row names it
            raise

    principal = await to_thread.run_sync(checked_caller)
    name, received = await to_thread.run_sync(receive, principal)
    await to_thread.run_sync(record_and_keep, name, received)


@post("/o/{org_id:int}/r/{display_id:str}/attachments", include_in_schema=False, request_max_body_size=None)
async def attach_file(request: Request, org_id: int, display_id: str, services: NamedDependency[Services],
                      project: str = "") -> Response:
    did = DisplayId.parse(display_id)

    def may_change_record(stores: Stores, principal: Principal) -> None:
        ws = knowledge.Workspace.for_member(stores.records, stores.directory, principal, org_id)
        record = knowledge.get_record(ws, did)  # 404 before reading a byte of the body
        if not can_write_scope(principal, record.scope, knowledge.project_access_of(ws, record.scope)):
            raise AccessDenied(f"you can read but not change {did}")

    def attach(upload_desk: UploadDesk, name: str, received: attachments.ReceivedFile) -> None:
        upload = attachments.record_upload(upload_desk, org_id=org_id, received=received, original_name=name)
        attachments.attach(upload_desk, org_id, did, upload.id)

    await store_form_file(request, services, org_id, noun="file", check=may_change_record, keep=attach)
    suffix = f"?project={project}" if project else ""
    return redirect(request, f"/o/{org_id}/r/{display_id}{suffix}")


@post("/o/{org_id:int}/r/{display_id:str}/attachments/{upload_id:int}/detach", sync_to_thread=True,
      include_in_schema=False)
@in_unit_of_work
def detach_file(request: Request, org_id: int, display_id: str, upload_id: int, form: NamedDependency[Form],
                signed_in: NamedDependency[SignedIn], services: NamedDependency[Services]) -> Response:
    attachments.detach(upload_desk(signed_in, services), org_id, DisplayId.parse(display_id), upload_id)
    suffix = f"?project={form.get('project')}" if form.get("project") else ""
    return redirect(request, f"/o/{org_id}/r/{display_id}{suffix}")


UPLOAD_PAGES = [attach_file, detach_file]
