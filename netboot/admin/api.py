"""The admin API's requests as values: `route` reads method, path and body once.

The adapter (services/netboot_services/admin_api.py) asks `route` what a
request is, and gets a typed answer: one of the operations below with its
arguments parsed and checked (a MAC in canonical form, an image ID in range,
a JSON body of the right shape), or an `ApiError` with the status and the
words to send. Nothing downstream looks at a path or a body again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from netboot.macaddr import MacAddress, parse_mac

API = "/api/"
MAX_BODY = 64 * 1024
IMAGE_ID_LIMIT = 1 << 32
STATE_CHANGING = frozenset({"PUT", "DELETE", "PATCH", "POST"})


@dataclass(frozen=True, slots=True)
class ListImages:
    pass


@dataclass(frozen=True, slots=True)
class ListMachines:
    pass


@dataclass(frozen=True, slots=True)
class ListAssignments:
    pass


@dataclass(frozen=True, slots=True)
class StreamEvents:
    pass


@dataclass(frozen=True, slots=True)
class OpenApiDocument:
    pass


@dataclass(frozen=True, slots=True)
class PutAssignment:
    mac: MacAddress
    image_id: int | None
    """None: no image (the Mac's default, the PC's menu)."""


@dataclass(frozen=True, slots=True)
class DeleteAssignment:
    mac: MacAddress


@dataclass(frozen=True, slots=True)
class PatchImage:
    image_id: int
    body: Any
    """The decoded JSON body; `netboot.admin.image_edits` judges its keys."""


@dataclass(frozen=True, slots=True)
class ApiError:
    status: int
    message: str
    allow: tuple[str, ...] = ()
    """405: the methods the path takes."""


Operation = (
    ListImages
    | ListMachines
    | ListAssignments
    | StreamEvents
    | OpenApiDocument
    | PutAssignment
    | DeleteAssignment
    | PatchImage
)
Route = Operation | ApiError


def changes_state(method: str) -> bool:
    return method in STATE_CHANGING


def route(method: str, path: str, body: bytes) -> Route:
    """What `method path` with `body` asks for (path without the query string)."""
    if not path.startswith(API):
        return ApiError(404, f"no such API path: {path}")
    parts = path[len(API) :].split("/")
    fixed: dict[str, Operation] = {
        "images": ListImages(),
        "machines": ListMachines(),
        "assignments": ListAssignments(),
        "events": StreamEvents(),
        "openapi.json": OpenApiDocument(),
    }
    if len(parts) == 1 and parts[0] in fixed:
        if method not in ("GET", "HEAD"):
            return ApiError(405, f"{path} takes GET", ("GET", "HEAD"))
        return fixed[parts[0]]
    if len(parts) == 2 and parts[0] == "assignments":
        return _assignment(method, parts[1], body)
    if len(parts) == 2 and parts[0] == "images":
        return _image(method, parts[1], body)
    return ApiError(404, f"no such API path: {path}")


def _assignment(method: str, raw_mac: str, body: bytes) -> Route:
    try:
        mac = parse_mac(raw_mac)
    except ValueError as error:
        return ApiError(400, str(error))
    if method == "DELETE":
        return DeleteAssignment(mac)
    if method != "PUT":
        return ApiError(405, "an assignment takes PUT or DELETE", ("PUT", "DELETE"))
    document = _json_object(body)
    if isinstance(document, ApiError):
        return document
    unknown = sorted(set(document) - {"image_id"})
    if unknown or "image_id" not in document:
        return ApiError(400, 'the body is {"image_id": N} (an image ID, or null for none)')
    image_id = document["image_id"]
    if image_id is None:
        return PutAssignment(mac, None)
    if isinstance(image_id, bool) or not isinstance(image_id, int):
        return ApiError(400, f"image_id must be an integer or null, not {image_id!r}")
    if not 0 <= image_id < IMAGE_ID_LIMIT:
        return ApiError(400, f"image_id {image_id} is not a 32-bit image ID")
    return PutAssignment(mac, image_id)


def _image(method: str, raw_id: str, body: bytes) -> Route:
    try:
        image_id = int(raw_id, 0)
    except ValueError:
        return ApiError(400, f"{raw_id!r} is not an image ID (decimal, or hex with 0x)")
    if not 0 <= image_id < IMAGE_ID_LIMIT:
        return ApiError(400, f"{raw_id} is not a 32-bit image ID")
    if method != "PATCH":
        return ApiError(405, "an image takes PATCH", ("PATCH",))
    document = _json_object(body)
    if isinstance(document, ApiError):
        return document
    return PatchImage(image_id, document)


def _json_object(body: bytes) -> dict[str, Any] | ApiError:
    if len(body) > MAX_BODY:
        return ApiError(413, f"the body is over {MAX_BODY} bytes")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        return ApiError(400, f"the body is not JSON: {error}")
    if not isinstance(document, dict):
        return ApiError(400, "the body must be a JSON object")
    return document
