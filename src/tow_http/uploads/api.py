"""Uploads over HTTP (SPEC §5): upload (raw body or multipart form), metadata, download, attach/detach,
a record's attachments, avatars and logos, delete. Each handler calls one method of ``UploadUseCases``
(``tow_core.use_cases.uploads``); the rules live in ``tow_core.attachments``.

The request body is streamed straight into the upload store from a worker thread (``pull_body`` hands it
over chunk by chunk), so memory stays flat whatever the size and the limit is enforced as bytes arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, BinaryIO
from urllib.parse import unquote

import msgspec
from anyio import to_thread
from litestar import Request, Response, Router, delete, get, head, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from tow_core.errors import InvalidInput, PayloadTooLarge
from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential
from tow_core.uploads import Upload
from tow_core.use_cases.uploads import UploadUseCases
from tow_http.downloads import download_response, head_response
from tow_http.multipart import FILE_FIELD, MULTIPART_OVERHEAD, pull_body
from tow_http.shapes import Id, Strict


class UploadOut(msgspec.Struct):
    id: int
    organisation_id: int
    uploader_id: int | None
    name: str
    size_bytes: int
    sha256: str
    content_type: str
    image: bool
    purpose: str
    subject_id: int | None
    record_id: int | None
    created_at: datetime
    download_url: str


class ImageIn(Strict):
    upload_id: Id


def upload_out(upload: Upload) -> UploadOut:
    return UploadOut(upload.id, upload.organisation_id, upload.uploader_id, upload.original_name, upload.size_bytes,
                     upload.sha256, upload.media_type, upload.inline, upload.purpose.value, upload.subject_id,
                     upload.record_id, upload.created_at, f"/api/uploads/{upload.id}/content")


# --- receiving a body ---------------------------------------------------------------------------------


class _FormFile:
    """The first file part of a multipart/form-data body, streamed (parsed as it arrives, RFC 7578)."""

    def __init__(self, body: Iterator[bytes], boundary: str) -> None:
        self.name = ""
        self._events = self._parse(body, boundary)
        for event in self._events:  # advance to the file part's headers
            if isinstance(event, MultipartSegment) and event.name == FILE_FIELD:
                self.name = event.filename or ""  # a nameless file still uploads (as "upload")
                return
        raise InvalidInput(f"the form has no file field named `{FILE_FIELD}`", field=FILE_FIELD)

    @staticmethod
    def _parse(body: Iterator[bytes], boundary: str) -> Iterator[object]:
        try:
            with PushMultipartParser(boundary, max_segment_count=16) as parser:
                for chunk in body:
                    yield from parser.parse(chunk)
        except MultipartError as exc:
            raise InvalidInput(f"the multipart body is malformed: {exc}", field=FILE_FIELD) from exc

    def chunks(self) -> Iterator[bytes]:
        for event in self._events:
            if event is None:  # end of the file part; the rest of the form is ignored
                return
            if isinstance(event, bytes | bytearray):
                yield bytes(event)


def _receive(request: Request, filename: str | None, max_bytes: int) -> tuple[str, Iterator[bytes]]:
    """(client file name, body chunks) for a raw body or a multipart form: the use case opens the body this
    way once the caller may upload, with its limit of ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdecimal() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes (uploads.upload_max_bytes)")
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    if media_type == "multipart/form-data":
        boundary = options.get("boundary")
        if not boundary:
            raise InvalidInput("multipart/form-data needs a boundary", field="content-type")
        form = _FormFile(pull_body(request.stream(), max_bytes=max_bytes + MULTIPART_OVERHEAD), boundary)
        return form.name, form.chunks()
    header_name = request.headers.get("x-filename")
    name = filename if filename is not None else unquote(header_name) if header_name else ""
    return name, pull_body(request.stream(), max_bytes=max_bytes)


Filename = Annotated[str | None, QueryParameter(
    name="filename", description="the file's name (kept as metadata after sanitising); or the `X-Filename` "
    "header, percent-encoded UTF-8. Ignored for multipart forms, which carry their own.")]


@post(
    "/organisations/{org_id:int}/uploads",
    summary="Upload a file",
    description="Send the file as the raw request body (any content type; name in `?filename=` or "
    "`X-Filename`), or as `multipart/form-data` with the file in a field named `file` (browser forms). "
    "The body is streamed to disk (no database connection is held meanwhile); more than "
    "`uploads.upload_max_bytes` is refused with 413 and nothing is "
    "kept. The stored name is generated by the server; your file name is sanitised and kept as metadata. The "
    "new upload is yours alone until you attach it to a record.",
    status_code=HTTP_201_CREATED,
    request_max_body_size=None,  # enforced while streaming, against uploads.upload_max_bytes
)
async def create_upload(org_id: int, request: Request, caller: NamedDependency[Credential],
                        uploads: NamedDependency[UploadUseCases], filename: Filename = None) -> UploadOut:
    # On a worker thread: the use case checks access in a short unit of work, opens the body (no unit of work
    # held while it streams) and records the upload in a second.
    def body(max_bytes: int) -> tuple[str, Iterator[bytes]]:
        return _receive(request, filename, max_bytes)

    return upload_out(await to_thread.run_sync(uploads.upload, caller, org_id, body))


@get("/uploads/{upload_id:int}", summary="An upload's metadata",
     description="404 unless you may read it: attached → whoever reads the record; otherwise its uploader; "
     "avatars → members of an organisation you share; logos → who sees the organisation or project; server "
     "admins read any.", sync_to_thread=True)
def get_upload(upload_id: int, caller: NamedDependency[Credential],
               uploads: NamedDependency[UploadUseCases]) -> UploadOut:
    return upload_out(uploads.get(caller, upload_id))


def _download(found: tuple[Upload, BinaryIO], request: Request) -> Response:
    upload, reader = found
    return download_response(upload, reader, request.headers.get("range"))


DOWNLOAD_DESCRIPTION = (
    "Streams the file, checked against the current permissions on every request. Sent as an attachment with a "
    "server-chosen Content-Type (only verified PNG/JPEG/GIF/WebP images are `inline`), `nosniff` and "
    "`Cache-Control: private`. One `Range: bytes=…` gives 206 (416 when outside the file); HEAD gives the headers."
)


@get("/uploads/{upload_id:int}/content", summary="Download an upload", description=DOWNLOAD_DESCRIPTION,
     sync_to_thread=True)
def download_upload(upload_id: int, request: Request, caller: NamedDependency[Credential],
                    uploads: NamedDependency[UploadUseCases]) -> Response:
    return _download(uploads.download(caller, upload_id), request)


@head("/uploads/{upload_id:int}/content", summary="Download headers of an upload", description=DOWNLOAD_DESCRIPTION,
      sync_to_thread=True)
def head_upload(upload_id: int, request: Request, caller: NamedDependency[Credential],
                uploads: NamedDependency[UploadUseCases]) -> Response[None]:
    return head_response(uploads.get(caller, upload_id), request.headers.get("range"))


@delete("/uploads/{upload_id:int}", summary="Delete an upload",
        description="Its uploader, an owner/admin of its organisation, or a server admin. The file is removed "
        "after the deletion commits. Audited.", sync_to_thread=True)
def delete_upload(upload_id: int, caller: NamedDependency[Credential],
                  uploads: NamedDependency[UploadUseCases]) -> Response[None]:
    uploads.delete(caller, upload_id)  # the row, then (committed) the file
    return Response(None, status_code=204)


RECORD = "/organisations/{org_id:int}/records/{display_id:str}/attachments"


@get(RECORD, summary="A record's attachments",
     description="404 unless you can read the record; then every upload attached to it.", sync_to_thread=True)
def list_attachments(org_id: int, display_id: str, caller: NamedDependency[Credential],
                     uploads: NamedDependency[UploadUseCases]) -> list[UploadOut]:
    return [upload_out(u) for u in uploads.attachments_of(caller, org_id, DisplayId.parse(display_id))]


@put(RECORD + "/{upload_id:int}", summary="Attach an upload to a record",
     description="Needs write access to the record (and to the record it was attached to before). From then "
     "on the upload is readable exactly by those who can read the record. Audited.", sync_to_thread=True)
def attach_upload(org_id: int, display_id: str, upload_id: int, caller: NamedDependency[Credential],
                  uploads: NamedDependency[UploadUseCases]) -> UploadOut:
    return upload_out(uploads.attach(caller, org_id, DisplayId.parse(display_id), upload_id))


@delete(RECORD + "/{upload_id:int}", summary="Detach an upload from a record",
        description="Needs write access to the record; the upload becomes its uploader's alone again. Audited.",
        status_code=200, sync_to_thread=True)
def detach_upload(org_id: int, display_id: str, upload_id: int, caller: NamedDependency[Credential],
                  uploads: NamedDependency[UploadUseCases]) -> UploadOut:
    return upload_out(uploads.detach(caller, org_id, DisplayId.parse(display_id), upload_id))


# --- avatars and logos --------------------------------------------------------------------------------

IMAGE_NOTE = ("`upload_id` names an upload of yours that decodes as a PNG, JPEG, GIF or WebP image (checked by "
              "content, never by name). The previous image becomes a plain file of its uploader again.")


def _image_or_none(upload: Upload | None) -> UploadOut | None:
    return upload_out(upload) if upload else None


@put("/me/avatar", summary="Set your profile image", description=IMAGE_NOTE, sync_to_thread=True)
def set_avatar(data: JSONBody[ImageIn], caller: NamedDependency[Credential],
               uploads: NamedDependency[UploadUseCases]) -> UploadOut | None:
    return _image_or_none(uploads.set_avatar(caller, data.upload_id))


@delete("/me/avatar", summary="Remove your profile image",
        description="The image becomes a plain unattached file of yours again.", status_code=204, sync_to_thread=True)
def clear_avatar(caller: NamedDependency[Credential], uploads: NamedDependency[UploadUseCases]) -> None:
    uploads.set_avatar(caller, None)


@get("/users/{user_id:int}/avatar", summary="A user's profile image",
     description="Readable by members of an organisation you both belong to (404 otherwise).", sync_to_thread=True)
def get_avatar(user_id: int, request: Request, caller: NamedDependency[Credential],
               uploads: NamedDependency[UploadUseCases]) -> Response:
    return _download(uploads.avatar(caller, user_id), request)


ORG_LOGO = "/organisations/{org_id:int}/logo"


@put(ORG_LOGO, summary="Set the organisation logo", description="Owners and admins. " + IMAGE_NOTE,
     sync_to_thread=True)
def set_org_logo(org_id: int, data: JSONBody[ImageIn], caller: NamedDependency[Credential],
                 uploads: NamedDependency[UploadUseCases]) -> UploadOut | None:
    return _image_or_none(uploads.set_organisation_logo(caller, org_id, data.upload_id))


@delete(ORG_LOGO, summary="Remove the organisation logo", description="Owners and admins.", status_code=204,
        sync_to_thread=True)
def clear_org_logo(org_id: int, caller: NamedDependency[Credential],
                   uploads: NamedDependency[UploadUseCases]) -> None:
    uploads.set_organisation_logo(caller, org_id, None)


@get(ORG_LOGO, summary="The organisation logo", description="Members of the organisation.", sync_to_thread=True)
def get_org_logo(org_id: int, request: Request, caller: NamedDependency[Credential],
                 uploads: NamedDependency[UploadUseCases]) -> Response:
    return _download(uploads.organisation_logo(caller, org_id), request)


PROJECT_LOGO = "/organisations/{org_id:int}/projects/{project_id:int}/logo"


@put(PROJECT_LOGO, summary="Set a project logo", description="Needs the project's manage permission. " + IMAGE_NOTE,
     sync_to_thread=True)
def set_project_logo(org_id: int, project_id: int, data: JSONBody[ImageIn], caller: NamedDependency[Credential],
                     uploads: NamedDependency[UploadUseCases]) -> UploadOut | None:
    return _image_or_none(uploads.set_project_logo(caller, org_id, project_id, data.upload_id))


@delete(PROJECT_LOGO, summary="Remove a project logo", description="Needs the project's manage permission.",
        status_code=204, sync_to_thread=True)
def clear_project_logo(org_id: int, project_id: int, caller: NamedDependency[Credential],
                       uploads: NamedDependency[UploadUseCases]) -> None:
    uploads.set_project_logo(caller, org_id, project_id, None)


@get(PROJECT_LOGO, summary="A project logo", description="Whoever can see the project.", sync_to_thread=True)
def get_project_logo(org_id: int, project_id: int, request: Request, caller: NamedDependency[Credential],
                     uploads: NamedDependency[UploadUseCases]) -> Response:
    return _download(uploads.project_logo(caller, org_id, project_id), request)


uploads_router = Router(
    path="/api",
    route_handlers=[create_upload, get_upload, download_upload, head_upload, delete_upload, list_attachments,
                    attach_upload, detach_upload, set_avatar, clear_avatar, get_avatar, set_org_logo, clear_org_logo,
                    get_org_logo, set_project_logo, clear_project_logo, get_project_logo],
    tags=["uploads"],
)
