"""The admin API described as OpenAPI 3.1, served at `/api/openapi.json`.

Written here by hand, beside the routes it describes, rather than generated:
the routes are few and the document is a contract sites build tools on. The
tests check that the document is valid OpenAPI and that every response the
real daemon sends validates against its schema (tests/test_admin_api.py), so
the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any

from netboot import __version__


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


STRINGS = {"type": "array", "items": {"type": "string"}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
        "additionalProperties": False,
    },
    "Image": {
        "type": "object",
        "required": [
            "id",
            "name",
            "path",
            "is_enabled",
            "is_default",
            "valid",
            "servable",
            "errors",
            "warnings",
        ],
        "properties": {
            "id": {**_nullable("integer"), "description": "The BSDP image ID (assign by it)."},
            "index": _nullable("integer"),
            "name": _nullable("string"),
            "description": _nullable("string"),
            "is_enabled": {"type": "boolean"},
            "is_default": {"type": "boolean"},
            "is_install": {"type": "boolean"},
            "type": _nullable("string"),
            "architectures": STRINGS,
            "pc_architectures": STRINGS,
            "path": {"type": "string"},
            "valid": {"type": "boolean"},
            "servable": {"type": "boolean"},
            "errors": STRINGS,
            "warnings": STRINGS,
            "enabled_system_identifiers": STRINGS,
            "disabled_system_identifiers": STRINGS,
            "enabled_mac_addresses": STRINGS,
            "disabled_mac_addresses": STRINGS,
        },
    },
    "ImageEdit": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "is_enabled": {"type": "boolean"},
            "is_default": {"type": "boolean"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "enabled_system_identifiers": STRINGS,
            "disabled_system_identifiers": STRINGS,
            "enabled_mac_addresses": STRINGS,
            "disabled_mac_addresses": STRINGS,
        },
    },
    "Assignment": {
        "type": "object",
        "required": ["mac", "image_id", "image_name", "source", "changed_by", "changed_at"],
        "properties": {
            "mac": {"type": "string"},
            "image_id": {
                **_nullable("integer"),
                "description": "null: no image (a Mac's default, a PC's menu).",
            },
            "image_name": _nullable("string"),
            "source": {"enum": ["api", "config"]},
            "changed_by": _nullable("string"),
            "changed_at": _nullable("number"),
        },
    },
    "AssignmentRequest": {
        "type": "object",
        "required": ["image_id"],
        "additionalProperties": False,
        "properties": {"image_id": {**_nullable("integer"), "minimum": 0}},
    },
    "Step": {
        "type": "object",
        "required": ["stage", "at", "detail", "bytes"],
        "properties": {
            "stage": {"type": "string"},
            "at": {"type": "number"},
            "detail": {"type": "string"},
            "bytes": _nullable("integer"),
        },
    },
    "Transfer": {
        "type": "object",
        "required": ["protocol", "name", "bytes", "size", "done", "started", "updated"],
        "properties": {
            "protocol": {"enum": ["tftp", "http"]},
            "name": {"type": "string"},
            "bytes": {"type": "integer"},
            "size": _nullable("integer"),
            "done": {"type": "boolean"},
            "started": {"type": "number"},
            "updated": {"type": "number"},
        },
    },
    "Journey": {
        "type": "object",
        "required": ["started", "ended", "steps", "transfers"],
        "properties": {
            "started": {"type": "number"},
            "ended": _nullable("number"),
            "steps": {"type": "array", "items": _ref("Step")},
            "transfers": {"type": "array", "items": _ref("Transfer")},
        },
    },
    "Lease": {
        "type": ["object", "null"],
        "required": ["address", "state", "expires_in"],
        "properties": {
            "address": {"type": "string"},
            "state": {"type": "string"},
            "expires_in": {"type": "number"},
        },
    },
    "Machine": {
        "type": "object",
        "required": [
            "mac",
            "address",
            "kind",
            "model",
            "architecture",
            "firmware",
            "server",
            "lease",
            "first_seen",
            "last_seen",
            "progress",
            "image",
            "assignment",
            "journeys",
        ],
        "properties": {
            "mac": {"type": "string"},
            "address": _nullable("string"),
            "kind": {"enum": ["mac", "pc", None]},
            "model": _nullable("string"),
            "architecture": _nullable("string"),
            "firmware": _nullable("string"),
            "server": _nullable("string"),
            "lease": _ref("Lease"),
            "first_seen": {"type": "number"},
            "last_seen": {"type": "number"},
            "progress": {"type": "string"},
            "image": _nullable("string"),
            "assignment": {"oneOf": [_ref("Assignment"), {"type": "null"}]},
            "journeys": {"type": "array", "items": _ref("Journey")},
        },
    },
}

LISTS = {
    "ImageList": ("images", "Image"),
    "MachineList": ("machines", "Machine"),
    "AssignmentList": ("assignments", "Assignment"),
}
for _name, (_key, _item) in LISTS.items():
    SCHEMAS[_name] = {
        "type": "object",
        "required": [_key],
        "properties": {_key: {"type": "array", "items": _ref(_item)}},
    }

MAC_PARAMETER = {
    "name": "mac",
    "in": "path",
    "required": True,
    "description": "The machine's MAC address, `aa:bb:cc:dd:ee:ff`.",
    "schema": {"type": "string"},
}
IMAGE_PARAMETER = {
    "name": "image_id",
    "in": "path",
    "required": True,
    "description": "The image ID, decimal or hex with 0x.",
    "schema": {"type": "string"},
}
UNAUTHORIZED = {
    "401": _error("No token, or a wrong one (no detail is given)."),
    "429": _error("Too many failed attempts from this address; see Retry-After."),
}
CHANGE_REFUSALS = {
    **UNAUTHORIZED,
    "400": _error("The path or body is not what the call takes."),
    "403": _error("A console session without its CSRF token."),
}


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh dict: callers may serialise it as they like)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "netboot admin API",
            "version": __version__,
            "description": (
                "Machines seen, images served, and which image each machine boots next. "
                "Changes need `Authorization: Bearer <token>` (`netboot admin-token` prints "
                "it); reads too when the admin listener is not on loopback."
            ),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/api/images": {
                "get": {
                    "summary": "The NBI sets of the catalog, with their problems.",
                    "responses": {"200": _json(_ref("ImageList"), "The images."), **UNAUTHORIZED},
                }
            },
            "/api/images/{image_id}": {
                "parameters": [IMAGE_PARAMETER],
                "patch": {
                    "summary": "Enable, disable, make default, or edit a set's safe keys.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("ImageEdit")}},
                    },
                    "responses": {
                        "200": _json(_ref("Image"), "The set as edited."),
                        "404": _error("No set has this image ID."),
                        "422": _error("The edit would leave the set invalid."),
                        **CHANGE_REFUSALS,
                    },
                },
            },
            "/api/machines": {
                "get": {
                    "summary": "Every machine seen, newest first, with its boot journeys.",
                    "responses": {
                        "200": _json(_ref("MachineList"), "The machines."),
                        **UNAUTHORIZED,
                    },
                }
            },
            "/api/assignments": {
                "get": {
                    "summary": "Every assignment in force, from the API and the configuration.",
                    "responses": {
                        "200": _json(_ref("AssignmentList"), "The assignments."),
                        **UNAUTHORIZED,
                    },
                }
            },
            "/api/assignments/{mac}": {
                "parameters": [MAC_PARAMETER],
                "put": {
                    "summary": "Make this machine boot an image next (null: none, its menu).",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("AssignmentRequest")}},
                    },
                    "responses": {
                        "204": {"description": "Assigned; in force for the next request."},
                        "404": _error("No set has this image ID."),
                        "422": _error("This machine cannot boot that image; the error says why."),
                        **CHANGE_REFUSALS,
                    },
                },
                "delete": {
                    "summary": "Remove this machine's API assignment.",
                    "responses": {
                        "204": {"description": "Removed."},
                        "404": _error("This machine has no API assignment."),
                        **CHANGE_REFUSALS,
                    },
                },
            },
            "/api/events": {
                "get": {
                    "summary": (
                        "Server-sent events: `hello`, `machine` (a Machine), `assignment` "
                        '({"mac", "assignment"}), `images` (an ImageList), `resync`.'
                    ),
                    "responses": {
                        "200": {
                            "description": "The live stream.",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **UNAUTHORIZED,
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
                }
            },
        },
    }
