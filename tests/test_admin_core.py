"""The admin API's pure core: assignments and their checks, the store, auth, events, routes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from netboot.admin.api import (
    ApiError,
    DeleteAssignment,
    ListMachines,
    PatchImage,
    PutAssignment,
    StreamEvents,
    route,
)
from netboot.admin.assignment_store import SqliteAssignments, StateDatabaseError
from netboot.admin.assignments import (
    Assignable,
    Assignment,
    CannotBoot,
    MachineFacts,
    UnknownImage,
    assignments_json,
    check_assignable,
)
from netboot.admin.audit import audit_line
from netboot.admin.auth import (
    Credentials,
    FailureLimiter,
    Granted,
    Refusal,
    Refused,
    SessionTable,
    authorize,
    login,
)
from netboot.admin.events import EventLog, parse_last_event_id
from netboot.admin.token import TokenFileError, ensure_token, read_token
from netboot.macaddr import MacAddress
from netboot.nbi.catalog import scan_catalog
from netboot.pc.choice import BootImage, ChoiceSettings, ImageMenu, choose_pc_image
from netboot_lab.factories import make_set, pc_set

MAC = MacAddress("52:54:00:aa:bb:01")
OTHER = MacAddress("52:54:00:aa:bb:02")
TOKEN = "s3cret-token-0123456789"  # noqa: S105 - a test token


# -- check_assignable ------------------------------------------------------------------


@pytest.fixture
def catalog_root(tmp_path: Path) -> Path:
    make_set(tmp_path, "MacOnly", Index=1)
    make_set(tmp_path, "Modern", Index=2, EnabledSystemIdentifiers=["iMac18,3"])
    make_set(tmp_path, "NoOld", Index=3, DisabledSystemIdentifiers=["MacBook5,1"])
    make_set(tmp_path, "Off", Index=4, IsEnabled=False)
    make_set(tmp_path, "Broken", Index=5, Type="FTP")
    make_set(tmp_path, "Listed", Index=6, EnabledMACAddresses=[OTHER])
    pc_set(tmp_path, "Rescue", 7, PCArchitectures=["efi-x64"])
    return tmp_path


def test_unknown_image_is_404_material(catalog_root: Path) -> None:
    catalog = scan_catalog(catalog_root)
    assert check_assignable(catalog, MAC, 0x0100FFFF, MachineFacts()) == UnknownImage(0x0100FFFF)


def test_no_image_is_always_assignable(catalog_root: Path) -> None:
    catalog = scan_catalog(catalog_root)
    assert check_assignable(catalog, MAC, None, MachineFacts("mac", "iMac13,2", "i386")) == (
        Assignable(None)
    )


@pytest.mark.parametrize(
    ("index", "facts", "words"),
    [
        (2, MachineFacts("mac", "MacBook5,1", "i386"), "does not list MacBook5,1"),
        (3, MachineFacts("mac", "MacBook5,1", "i386"), "lists MacBook5,1 in Disabled"),
        (1, MachineFacts("mac", "iMac13,2", "ppc"), "built for i386, this Mac is ppc"),
        (4, MachineFacts(), "is disabled"),
        (5, MachineFacts(), "is not valid"),
        (6, MachineFacts(), f"does not admit {MAC}"),
        (1, MachineFacts("pc", firmware="efi-x64"), "no PC kernel"),
        (7, MachineFacts("pc", firmware="bios"), "built for efi-x64, this PC is bios"),
    ],
)
def test_an_image_the_machine_cannot_boot_says_why(
    catalog_root: Path, index: int, facts: MachineFacts, words: str
) -> None:
    catalog = scan_catalog(catalog_root)
    checked = check_assignable(catalog, MAC, 0x01000000 + index, facts)
    assert isinstance(checked, CannotBoot)
    assert words in checked.reason


@pytest.mark.parametrize(
    ("index", "facts"),
    [
        (2, MachineFacts("mac", "iMac18,3", "i386")),
        (3, MachineFacts("mac", "iMac13,2", "i386")),
        (1, MachineFacts()),  # never seen: only the MAC lists can be checked
        (7, MachineFacts("pc", firmware="efi-x64")),
    ],
)
def test_an_image_the_machine_can_boot_is_assignable(
    catalog_root: Path, index: int, facts: MachineFacts
) -> None:
    catalog = scan_catalog(catalog_root)
    checked = check_assignable(catalog, MAC, 0x01000000 + index, facts)
    assert isinstance(checked, Assignable) and checked.nbi_set is not None


def test_assignments_list_shows_both_sources_the_api_first(catalog_root: Path) -> None:
    catalog = scan_catalog(catalog_root)
    stored = {MAC: Assignment(MAC, 0x01000001, "token", 10.0)}
    listed = assignments_json(stored, [(MAC, "Rescue"), (OTHER, "Rescue")], catalog)
    assert listed == [
        {
            "mac": MAC,
            "image_id": 0x01000001,
            "image_name": "MacOnly",
            "source": "api",
            "changed_by": "token",
            "changed_at": 10.0,
        },
        {
            "mac": OTHER,
            "image_id": 0x01000007,
            "image_name": "Rescue",
            "source": "config",
            "changed_by": None,
            "changed_at": None,
        },
    ]


# -- how the protocols read an assignment ---------------------------------------------------


def test_pc_choice_boots_the_assigned_image_or_shows_the_menu(tmp_path: Path) -> None:
    pc_set(tmp_path, "Rescue", 1, IsDefault=True)
    pc_set(tmp_path, "Installer", 2)
    catalog = scan_catalog(tmp_path)
    settings = ChoiceSettings(assignments={MAC: "Rescue"})
    assigned = ChoiceSettings(assignments={MAC: "Rescue"}, assigned={MAC: 0x01000002})
    menu = ChoiceSettings(assigned={MAC: None})
    first = choose_pc_image(catalog, MAC, "efi-x64", None, settings)
    chosen = choose_pc_image(catalog, MAC, "efi-x64", None, assigned)
    asked = choose_pc_image(catalog, MAC, "efi-x64", "Rescue", assigned)
    listed = choose_pc_image(catalog, MAC, "efi-x64", None, menu)
    assert isinstance(first, BootImage) and first.image.name == "Rescue"
    assert isinstance(chosen, BootImage) and chosen.image.name == "Installer"
    assert isinstance(asked, BootImage) and asked.image.name == "Rescue"  # a menu pick wins
    assert isinstance(listed, ImageMenu) and len(listed.images) == 2


def test_pc_choice_passes_over_an_assigned_image_for_other_firmware(tmp_path: Path) -> None:
    pc_set(tmp_path, "Rescue", 1, IsDefault=True)
    pc_set(tmp_path, "Arm", 2, PCArchitectures=["efi-arm64"])
    catalog = scan_catalog(tmp_path)
    chosen = choose_pc_image(
        catalog, MAC, "efi-x64", None, ChoiceSettings(assigned={MAC: 0x01000002})
    )
    assert isinstance(chosen, BootImage) and chosen.image.name == "Rescue"


# -- the store -----------------------------------------------------------------------------


def test_store_keeps_assignments_across_reopening(tmp_path: Path) -> None:
    database = tmp_path / "state.sqlite3"
    with SqliteAssignments(database) as store:
        store.save(Assignment(MAC, 0x01000002, "token", 5.0))
        store.save(Assignment(OTHER, None, "session 12345678", 6.0))
        store.save(Assignment(MAC, 0x01000003, "token", 7.0))
        assert store.delete(OTHER) is True
        assert store.delete(OTHER) is False
    with SqliteAssignments(database) as store:
        assert store.load() == {MAC: Assignment(MAC, 0x01000003, "token", 7.0)}


def test_store_refuses_another_programs_database(tmp_path: Path) -> None:
    import sqlite3

    database = tmp_path / "other.sqlite3"
    sqlite3.connect(database).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StateDatabaseError, match="not a netboot state database"):
        SqliteAssignments(database)


# -- the token -------------------------------------------------------------------------------


def test_token_is_made_once_private_and_kept(tmp_path: Path) -> None:
    file = tmp_path / "sub" / "admin-token"
    token = ensure_token(file)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert len(token) >= 40 and ensure_token(file) == token == read_token(file)
    assert [p.name for p in file.parent.iterdir()] == ["admin-token"]  # no temporary left


def test_token_readable_by_others_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "admin-token"
    ensure_token(file)
    file.chmod(0o644)
    with pytest.raises(TokenFileError, match=r"readable by others.*chmod 600"):
        read_token(file)


def test_missing_or_empty_token_is_named(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="no admin token yet"):
        read_token(tmp_path / "none")
    empty = tmp_path / "empty"
    empty.touch(mode=0o600)
    with pytest.raises(TokenFileError, match="does not hold a token"):
        read_token(empty)


# -- auth ------------------------------------------------------------------------------------


def _authorize(
    credentials: Credentials,
    sessions: SessionTable,
    limiter: FailureLimiter,
    *,
    changes: bool = True,
    reads_need_login: bool = False,
    now: float = 0.0,
) -> Granted | Refused:
    return authorize(
        TOKEN,
        credentials,
        changes_state=changes,
        reads_need_login=reads_need_login,
        address="10.0.0.9",
        sessions=sessions,
        limiter=limiter,
        now=now,
    )


def test_changes_need_the_token_reads_only_off_loopback() -> None:
    sessions, limiter = SessionTable(100.0), FailureLimiter()
    assert _authorize(Credentials(), sessions, limiter) == Refused(Refusal.UNAUTHORIZED)
    assert _authorize(Credentials("wrong"), sessions, limiter) == Refused(Refusal.UNAUTHORIZED)
    assert _authorize(Credentials(TOKEN), sessions, limiter) == Granted("token")
    assert _authorize(Credentials(), sessions, limiter, changes=False) == Granted("anonymous")
    stale = _authorize(Credentials("another daemon's"), sessions, limiter, changes=False)
    assert stale == Granted("anonymous")
    assert _authorize(
        Credentials(), sessions, limiter, changes=False, reads_need_login=True
    ) == Refused(Refusal.UNAUTHORIZED)


def test_a_session_needs_its_csrf_token_for_changes_and_lapses() -> None:
    sessions, limiter = SessionTable(100.0), FailureLimiter()
    session = login(TOKEN, TOKEN, address="a", sessions=sessions, limiter=limiter, now=0.0)
    assert not isinstance(session, Refused)
    reading = _authorize(Credentials(session=session.id), sessions, limiter, changes=False)
    assert reading == Granted(session.label, session)
    assert _authorize(Credentials(session=session.id), sessions, limiter) == Refused(Refusal.CSRF)
    wrong = Credentials(session=session.id, csrf="nope")
    assert _authorize(wrong, sessions, limiter) == Refused(Refusal.CSRF)
    right = Credentials(session=session.id, csrf=session.csrf)
    assert isinstance(_authorize(right, sessions, limiter), Granted)
    assert _authorize(right, sessions, limiter, now=100.0) == Refused(Refusal.UNAUTHORIZED)
    assert session.id not in session.label and session.id[:8] in session.label


def test_failures_are_limited_per_address_and_then_even_the_token_waits() -> None:
    sessions, limiter = SessionTable(100.0), FailureLimiter(limit=3, window=60.0)
    for second in range(3):
        assert _authorize(Credentials("bad"), sessions, limiter, now=second) == Refused(
            Refusal.UNAUTHORIZED
        )
    blocked = _authorize(Credentials(TOKEN), sessions, limiter, now=3.0)
    assert isinstance(blocked, Refused) and blocked.status is Refusal.TOO_MANY
    assert blocked.retry_after == pytest.approx(57.0)
    assert _authorize(Credentials(TOKEN), sessions, limiter, now=61.0) == Granted("token")
    other = authorize(
        TOKEN,
        Credentials(TOKEN),
        changes_state=True,
        reads_need_login=False,
        address="10.0.0.10",
        sessions=sessions,
        limiter=FailureLimiter(limit=3),
        now=3.0,
    )
    assert other == Granted("token")


def test_wrong_login_counts_as_a_failure() -> None:
    sessions, limiter = SessionTable(100.0), FailureLimiter(limit=1)
    assert login(TOKEN, "x", address="a", sessions=sessions, limiter=limiter, now=0.0) == (
        Refused(Refusal.UNAUTHORIZED)
    )
    again = login(TOKEN, TOKEN, address="a", sessions=sessions, limiter=limiter, now=1.0)
    assert isinstance(again, Refused) and again.status is Refusal.TOO_MANY


# -- events and audit ---------------------------------------------------------------------------


def test_event_log_resumes_or_asks_for_a_resync() -> None:
    events = EventLog(capacity=3)
    for number in range(5):
        events.append("machine", {"n": number})
    assert [e.id for e in events.since(3) or []] == [4, 5]
    assert events.since(5) == []
    assert events.since(1) is None  # event 2 is no longer kept
    frame = events.since(4)[0].frame()  # type: ignore[index]
    assert frame == b'id: 5\nevent: machine\ndata: {"n":4}\n\n'
    assert parse_last_event_id(" 12 ") == 12 and parse_last_event_id("x") is None


def test_audit_line_is_one_json_object() -> None:
    line = audit_line(
        who="token",
        address="10.0.0.9",
        action="assign",
        target=MAC,
        before=None,
        after=0x01000002,
        now=0.0,
    )
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "1970-01-01T00:00:00Z",
        "who": "token",
        "address": "10.0.0.9",
        "action": "assign",
        "target": MAC,
        "before": None,
        "after": 0x01000002,
    }


# -- routes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/api/machines", b"", ListMachines()),
        ("GET", "/api/events", b"", StreamEvents()),
        ("PUT", "/api/assignments/52:54:0:AA:bb:1", b'{"image_id": 5}', PutAssignment(MAC, 5)),
        ("PUT", f"/api/assignments/{MAC}", b'{"image_id": null}', PutAssignment(MAC, None)),
        ("DELETE", f"/api/assignments/{MAC}", b"", DeleteAssignment(MAC)),
        (
            "PATCH",
            "/api/images/0x01000002",
            b'{"name": "X"}',
            PatchImage(0x01000002, {"name": "X"}),
        ),
    ],
)
def test_routes(method: str, path: str, body: bytes, expected: object) -> None:
    assert route(method, path, body) == expected


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/machines", b"", 405),
        ("GET", "/api/nothing", b"", 404),
        ("PUT", "/api/assignments/not-a-mac", b'{"image_id": 1}', 400),
        ("PUT", f"/api/assignments/{MAC}", b"{", 400),
        ("PUT", f"/api/assignments/{MAC}", b"[1]", 400),
        ("PUT", f"/api/assignments/{MAC}", b'{"image": 1}', 400),
        ("PUT", f"/api/assignments/{MAC}", b'{"image_id": true}', 400),
        ("PUT", f"/api/assignments/{MAC}", b'{"image_id": "1"}', 400),
        ("PUT", f"/api/assignments/{MAC}", b'{"image_id": 4294967296}', 400),
        ("PUT", f"/api/assignments/{MAC}", b'{"image_id": 1, "x": 2}', 400),
        ("GET", f"/api/assignments/{MAC}", b"", 405),
        ("PATCH", "/api/images/zz", b"{}", 400),
        ("PUT", f"/api/assignments/{MAC}", b" " * 70000, 413),
    ],
)
def test_bad_requests_get_their_status(method: str, path: str, body: bytes, status: int) -> None:
    answer = route(method, path, body)
    assert isinstance(answer, ApiError) and answer.status == status and answer.message
