"""The console's HTML as the server sends it: the template filled, rows rendered server-side.

The page shows the machines and images before its script runs (and to a
browser without JavaScript); console.js then replaces the rows with its own,
which carry the controls, and keeps them live. The row markup is what the
template's comment (netboot/admin/console/index.html) promises console.js.
Every value is HTML-escaped here; nothing from a client reaches the page raw.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from html import escape
from importlib import resources
from typing import Any

CONSOLE_PACKAGE = "netboot.admin"
CONSOLE_DIRECTORY = "console"
STATIC_TYPES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}


def console_file(name: str) -> str:
    """A file of the console (package data), as text."""
    return resources.files(CONSOLE_PACKAGE).joinpath(CONSOLE_DIRECTORY, name).read_text("utf-8")


def inline_script_hashes(html: str) -> tuple[str, ...]:
    """CSP sources (`'sha256-…'`) of a page's inline scripts, so the policy can forbid any
    other inline script (an injected one) while the page's own runs."""
    hashes = []
    for body in re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.DOTALL):
        if body.strip():
            digest = hashlib.sha256(body.encode()).digest()
            hashes.append(f"'sha256-{base64.b64encode(digest).decode()}'")
    return tuple(hashes)


def content_security_policy(html: str) -> str:
    scripts = " ".join(("'self'", *inline_script_hashes(html)))
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def _text(value: object) -> str:
    return "" if value is None else escape(str(value))


def _cell(name: str, value: object) -> str:
    return f'<td class="{name}">{_text(value)}</td>'


def _assignment_text(assignment: Mapping[str, Any] | None) -> str:
    if assignment is None:
        return "none"
    image_id = assignment.get("image_id")
    name = assignment.get("image_name")
    shown = "none/menu" if image_id is None and name is None else name or f"{image_id:#010x}"
    return f"{shown} ({assignment.get('source')})"


def _lease_text(lease: Mapping[str, Any] | None) -> str:
    if lease is None:
        return ""
    return f"{lease['address']} ({lease['state']}, {lease['expires_in']:.0f} s)"


def machine_rows(machines: Iterable[Mapping[str, Any]]) -> str:
    rows = []
    for machine in machines:
        mac = _text(machine["mac"])
        kind = machine.get("model") or machine.get("firmware") or machine.get("kind")
        rows.append(
            f'<tbody class="machine-group" data-machine-group="{mac}">'
            f'<tr class="machine" data-mac="{mac}">'
            + _cell("mac", machine["mac"])
            + _cell("kind", kind)
            + _cell("architecture", machine.get("architecture"))
            + _cell("address", machine.get("address"))
            + _cell("lease", _lease_text(machine.get("lease")))
            + _cell("server", machine.get("server"))
            + _cell("progress", machine.get("progress"))
            + _cell("assignment", _assignment_text(machine.get("assignment")))
            + _cell("assign", "")
            + _cell("journey", "")
            + "</tr></tbody>"
        )
    return "\n".join(rows)


def image_rows(images: Iterable[Mapping[str, Any]]) -> str:
    rows = []
    for image in images:
        image_id = image.get("id")
        problems = "; ".join([*image.get("errors", ()), *image.get("warnings", ())])
        rows.append(
            f'<tr class="image" data-image-id="{"" if image_id is None else int(image_id)}">'
            + _cell("image-id", "-" if image_id is None else f"{image_id:#010x}")
            + _cell("image-name", image.get("name"))
            + _cell("image-description", image.get("description"))
            + _cell("image-architectures", ", ".join(image.get("architectures", ())))
            + _cell("image-enabled", "yes" if image.get("is_enabled") else "no")
            + _cell("image-default", "yes" if image.get("is_default") else "no")
            + _cell("image-problems", problems)
            + "</tr>"
        )
    return "\n".join(rows)


def render_console(
    template: str,
    *,
    csrf_token: str,
    version: str,
    machines: Iterable[Mapping[str, Any]],
    images: Iterable[Mapping[str, Any]],
) -> str:
    """The template with its four placeholders filled (each once, all escaped)."""
    values = {
        "{{csrf_token}}": escape(csrf_token, quote=True),
        "{{version}}": escape(version),
        "{{machines_rows}}": machine_rows(machines),
        "{{images_rows}}": image_rows(images),
    }
    return re.sub(r"\{\{\w+\}\}", lambda match: values.get(match[0], match[0]), template)
