"""The admin API of a real daemon, on a namespace address, talked to with curl.

The issue's "done when" end to end: without the token a change is 401; with
the token from `netboot admin-token` an assignment is 204, and the next BSDP
LIST for that MAC (our probe, from its namespace) has the image as default
and the next iPXE script for it boots it. Around it: every response checked
against the OpenAPI document the daemon serves, token, cookie and CSRF
refusals, the 429 after repeated failures, audit lines, the live stream,
concurrent image edits, and assignments surviving a restart.
"""

from __future__ import annotations

import json
import plistlib
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set, pc_set
from netboot_lab.netns import VethPair, bsdp_probe, ip, netboot_in, run_in
from tests.netns import veth_lab

SUBNET = "10.241.0"
PORT = 9067
A, B, LISTED, MAC_ONLY = 0x01000001, 0x01000002, 0x01000003, 0x01000004
STRANGER = "02:00:00:00:00:99"


@dataclass
class AdminLab:
    lab: VethPair
    daemon: Daemon
    token: str
    mac: str
    root: Path
    state: Path

    @property
    def base(self) -> str:
        return f"http://{self.lab.server_ip}:{PORT}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def curl(
    lab: AdminLab, method: str, path: str, *extra: str, body: Any = None, base: str | None = None
) -> Answer:
    """One request by curl from the client's namespace to the admin listener (or `base`)."""
    command = ["curl", "-sS", "-X", method, "-D", "-", "--max-time", "20"]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    done = run_in(lab.lab.client, *command, *extra, (base or lab.base) + path)
    assert done.returncode == 0, done.stderr
    head, _, text = done.stdout.replace("\r\n", "\n").partition("\n\n")
    while head.startswith("HTTP/1.1 100"):
        head, _, text = text.partition("\n\n")
    status_line, *lines = head.split("\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), headers, text)


def bearer(lab: AdminLab) -> tuple[str, str]:
    return ("-H", f"Authorization: Bearer {lab.token}")


def start(root: Path, lab: VethPair, state: Path) -> Daemon:
    daemon = Daemon(
        [
            "--root", str(root),
            "--interface", lab.server_if,
            "--admin-listen", f"{lab.server_ip}:{PORT}",
            "--admin-token-file", str(state / "admin-token"),
            "--state-database", str(state / "state.sqlite3"),
            "--audit-log", str(state / "audit.log"),
        ],
        netns=lab.server,
    )  # fmt: skip
    daemon.wait_ready()
    return daemon


@pytest.fixture(scope="module")
def admin_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminLab]:
    root = tmp_path_factory.mktemp("images")
    state = tmp_path_factory.mktemp("state")
    pc_set(root, "Alpha", 1, IsDefault=True)
    pc_set(root, "Beta", 2)
    pc_set(root, "Listed", 3, EnabledMACAddresses=[STRANGER])
    make_set(root, "MacOnly", Index=4)
    with veth_lab(SUBNET) as lab:
        running = AdminLab(lab, start(root, lab, state), "", "", root, state)
        try:
            printed = netboot_in(
                lab.server, "admin-token", "--token-file", str(state / "admin-token")
            )
            assert printed.returncode == 0, printed.stderr
            running.token = printed.stdout.strip()
            link = json.loads(ip("-j", "link", "show", lab.client_if, netns=lab.client))
            running.mac = link[0]["address"]
            yield running
        finally:
            running.daemon.stop()


# -- the OpenAPI document checks every answer ------------------------------------------------


@pytest.fixture(scope="module")
def schemas(admin_lab: AdminLab) -> dict[str, Draft202012Validator]:
    answer = curl(admin_lab, "GET", "/api/openapi.json")
    assert answer.status == 200
    document = answer.json()
    validate_openapi(document)
    registry = Registry().with_resource("urn:netboot", Resource.from_contents(
        {**document, "$schema": "https://json-schema.org/draft/2020-12/schema"}
    ))  # fmt: skip
    return {
        name: Draft202012Validator(
            {"$ref": f"urn:netboot#/components/schemas/{name}"}, registry=registry
        )
        for name in document["components"]["schemas"]
    }


def valid(schemas: dict[str, Draft202012Validator], name: str, answer: Answer) -> Any:
    assert answer.headers["content-type"] == "application/json", answer
    body = answer.json()
    schemas[name].validate(body)
    return body


def test_done_when_an_assignment_is_the_next_boot_of_that_mac(
    admin_lab: AdminLab, schemas: dict[str, Draft202012Validator]
) -> None:
    mac = admin_lab.mac
    refused = curl(admin_lab, "PUT", f"/api/assignments/{mac}", body={"image_id": B})
    assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert valid(schemas, "Error", refused) == {"error": "unauthorized"}
    status, before = bsdp_probe(admin_lab.lab.client, admin_lab.lab.client_if)
    assert status == 0 and before["default_image_id"] == A

    done = curl(
        admin_lab, "PUT", f"/api/assignments/{mac}", *bearer(admin_lab), body={"image_id": B}
    )
    assert done.status == 204 and done.body == ""
    status, after = bsdp_probe(admin_lab.lab.client, admin_lab.lab.client_if)
    assert status == 0 and after["default_image_id"] == B
    machines = valid(
        schemas, "MachineList", curl(admin_lab, "GET", "/api/machines", *bearer(admin_lab))
    )
    seen = {m["mac"]: m for m in machines["machines"]}
    assert seen[mac]["kind"] == "mac" and seen[mac]["assignment"]["image_id"] == B
    http = f"http://{admin_lab.lab.server_ip}"
    script = curl(admin_lab, "GET", f"/boot.ipxe?mac={mac}&arch=7", base=http)
    assert "Beta.nbi" in script.body and "Alpha.nbi" not in script.body, script.body
    assignments = valid(
        schemas, "AssignmentList", curl(admin_lab, "GET", "/api/assignments", *bearer(admin_lab))
    )
    assert {
        "mac": mac,
        "image_id": B,
        "image_name": "Beta",
        "source": "api",
        "changed_by": "token",
    }.items() <= assignments["assignments"][0].items()
    audit = (admin_lab.state / "audit.log").read_text().splitlines()
    record = json.loads(audit[-1])
    assert record["who"] == "token" and record["action"] == "assign"
    assert (record["target"], record["after"], record["address"]) == (
        mac, B, admin_lab.lab.client_ip
    )  # fmt: skip


def test_refusals_name_why_and_validate(
    admin_lab: AdminLab, schemas: dict[str, Draft202012Validator]
) -> None:
    auth = bearer(admin_lab)
    mac = admin_lab.mac
    unknown = curl(admin_lab, "PUT", f"/api/assignments/{mac}", *auth, body={"image_id": 0x0100FF})
    assert unknown.status == 404 and "0x000100ff" in valid(schemas, "Error", unknown)["error"]
    cannot = curl(admin_lab, "PUT", f"/api/assignments/{mac}", *auth, body={"image_id": LISTED})
    assert cannot.status == 422
    assert "does not admit" in valid(schemas, "Error", cannot)["error"]
    bad = curl(admin_lab, "PUT", f"/api/assignments/{mac}", *auth, body={"image": 1})
    assert bad.status == 400 and valid(schemas, "Error", bad)["error"]
    stranger = f"/api/assignments/{STRANGER}"
    assert curl(admin_lab, "PUT", stranger, *auth, body={"image_id": LISTED}).status == 204
    assert curl(admin_lab, "DELETE", stranger, *auth).status == 204
    gone = curl(admin_lab, "DELETE", stranger, *auth)
    assert gone.status == 404 and valid(schemas, "Error", gone)
    images = valid(schemas, "ImageList", curl(admin_lab, "GET", "/api/images", *auth))
    assert [i["name"] for i in images["images"]] == ["Alpha", "Beta", "Listed", "MacOnly"]


def test_off_loopback_every_read_wants_the_token(admin_lab: AdminLab) -> None:
    for path in ("/api/machines", "/api/images", "/metrics", "/status.json", "/status"):
        assert curl(admin_lab, "GET", path).status == 401, path
        assert curl(admin_lab, "GET", path, *bearer(admin_lab)).status == 200, path
    assert curl(admin_lab, "GET", "/").status == 303  # a browser is sent to log in
    assert curl(admin_lab, "GET", "/api/openapi.json").status == 200


def test_console_login_cookie_and_csrf(admin_lab: AdminLab) -> None:
    wrong = curl(admin_lab, "POST", "/login", "--data-urlencode", "token=not-it")
    assert wrong.status == 401 and "set-cookie" not in wrong.headers
    login = curl(admin_lab, "POST", "/login", "--data-urlencode", f"token={admin_lab.token}")
    assert login.status == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    session = cookie.split(";")[0]
    page = curl(admin_lab, "GET", "/", "-H", f"Cookie: {session}")
    assert page.status == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    csrf = page.body.split('name="csrf-token" content="')[1].split('"')[0]
    assert len(csrf) > 20 and admin_lab.mac in page.body
    path = f"/api/assignments/{STRANGER}"
    no_csrf = curl(admin_lab, "PUT", path, "-H", f"Cookie: {session}", body={"image_id": None})
    assert no_csrf.status == 403 and no_csrf.json() == {"error": "CSRF token missing or wrong"}
    with_csrf = curl(
        admin_lab, "PUT", path, "-H", f"Cookie: {session}", "-H", f"X-CSRF-Token: {csrf}",
        body={"image_id": None},
    )  # fmt: skip
    assert with_csrf.status == 204
    record = json.loads((admin_lab.state / "audit.log").read_text().splitlines()[-1])
    assert record["who"].startswith("session ") and record["after"] is None
    assert session.split("=")[1] not in (admin_lab.state / "audit.log").read_text()
    assert curl(admin_lab, "DELETE", path, *bearer(admin_lab)).status == 204


def test_repeated_failures_from_one_address_get_429(admin_lab: AdminLab) -> None:
    other = f"{SUBNET}.77"
    ip("addr", "add", f"{other}/24", "dev", admin_lab.lab.client_if, netns=admin_lab.lab.client)
    source = ("--interface", other)
    statuses = [
        curl(admin_lab, "GET", "/api/machines", *source, "-H", "Authorization: Bearer x").status
        for _ in range(11)
    ]
    assert statuses == [401] * 10 + [429]
    limited = curl(admin_lab, "GET", "/api/machines", *source, *bearer(admin_lab))
    assert limited.status == 429 and int(limited.headers["retry-after"]) > 0
    assert limited.json() == {"error": "too many attempts"}
    assert curl(admin_lab, "GET", "/api/machines", *bearer(admin_lab)).status == 200


def test_the_live_stream_carries_changes(admin_lab: AdminLab) -> None:
    command = ["curl", "-sN", "--max-time", "6", *bearer(admin_lab), admin_lab.base + "/api/events"]
    stream = subprocess.Popen(
        ["ip", "netns", "exec", admin_lab.lab.client, *command],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stream.stdout is not None
    assert stream.stdout.readline().startswith("event: hello")
    path = f"/api/assignments/{admin_lab.mac}"
    assert curl(admin_lab, "PUT", path, *bearer(admin_lab), body={"image_id": A}).status == 204
    bsdp_probe(admin_lab.lab.client, admin_lab.lab.client_if)
    text = stream.communicate(timeout=30)[0]
    frames = [frame for frame in text.split("\n\n") if frame.strip()]
    events = {}
    for frame in frames:
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        events.setdefault(fields.get("event"), json.loads(fields["data"]))
    assert events["assignment"]["mac"] == admin_lab.mac
    assert events["assignment"]["assignment"]["image_id"] == A
    assert events["machine"]["mac"] == admin_lab.mac


def test_concurrent_image_edits_from_two_clients_keep_the_plist_whole(
    admin_lab: AdminLab, schemas: dict[str, Draft202012Validator]
) -> None:
    answers: list[int] = []

    def edit(writer: str) -> None:
        for number in range(8):
            body = {"description": f"{writer} {number}"}
            answers.append(curl(admin_lab, "PATCH", f"/api/images/{B}", *bearer(admin_lab),
                                body=body).status)  # fmt: skip

    threads = [threading.Thread(target=edit, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 16
    plist = plistlib.loads((admin_lab.root / "Beta.nbi" / "NBImageInfo.plist").read_bytes())
    assert plist["Description"] in ("one 7", "two 7")
    shown = curl(admin_lab, "PATCH", f"/api/images/{B:#x}", *bearer(admin_lab),
                 body={"name": "Beta"})  # fmt: skip
    assert valid(schemas, "Image", shown)["description"] == plist["Description"]
    refused = curl(admin_lab, "PATCH", f"/api/images/{B}", *bearer(admin_lab), body={"Index": 9})
    assert refused.status == 400


def test_assignments_survive_a_restart(admin_lab: AdminLab) -> None:
    path = f"/api/assignments/{admin_lab.mac}"
    assert curl(admin_lab, "PUT", path, *bearer(admin_lab), body={"image_id": B}).status == 204
    assert admin_lab.daemon.stop() == 0
    admin_lab.daemon = start(admin_lab.root, admin_lab.lab, admin_lab.state)
    status, answer = bsdp_probe(admin_lab.lab.client, admin_lab.lab.client_if)
    assert status == 0 and answer["default_image_id"] == B
    listed = curl(admin_lab, "GET", "/api/assignments", *bearer(admin_lab)).json()
    assert [a["image_id"] for a in listed["assignments"] if a["mac"] == admin_lab.mac] == [B]


def test_the_command_line_goes_through_the_api(admin_lab: AdminLab) -> None:
    client = admin_lab.lab.client
    where = ["--admin", admin_lab.base, "--token-file", str(admin_lab.state / "admin-token")]
    done = netboot_in(client, "assign", *where, STRANGER, f"{LISTED:#x}")
    assert done.returncode == 0 and f"assigned image {LISTED:#010x}" in done.stdout, done.stderr
    unknown = netboot_in(client, "assign", *where, STRANGER, "0x0100ffff")
    assert unknown.returncode == 3 and "no image with ID 0x0100ffff" in unknown.stderr
    cannot = netboot_in(client, "assign", *where, admin_lab.mac, str(LISTED))
    assert cannot.returncode == 3 and "does not admit" in cannot.stderr
    anonymous = ["--admin", admin_lab.base, "--token-file", str(admin_lab.state / "none")]
    refused = netboot_in(client, "assign", *anonymous, STRANGER, "none")
    assert refused.returncode == 4 and "not authorized (401)" in refused.stderr
    assert netboot_in(client, "machines", *anonymous).returncode == 4  # off loopback
    listed = netboot_in(client, "machines", *where, "--json")
    assert listed.returncode == 0, listed.stderr
    assert admin_lab.mac in {m["mac"] for m in json.loads(listed.stdout)["machines"]}
    human = netboot_in(client, "machines", *where)
    assert admin_lab.mac in human.stdout
    removed = netboot_in(client, "assign", *where, "--remove", STRANGER)
    assert removed.returncode == 0, removed.stderr
    assert netboot_in(client, "assign", *where, "--remove", STRANGER).returncode == 3
