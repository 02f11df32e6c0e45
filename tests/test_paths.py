"""Keeping served paths inside their base directory: is_safe_relative, resolve_within."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.paths import PathOutsideRoot, SymlinkLoop, is_safe_relative, resolve_within


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """An NBI-like served directory, next to a sibling the tests try to reach."""
    root = tmp_path / "root"
    (root / "i386" / "x86_64").mkdir(parents=True)
    (root / "i386" / "booter").write_bytes(b"booter")
    (root / "i386" / "x86_64" / "kernelcache").write_bytes(b"kernel")
    (root / "NetBoot.dmg").write_bytes(b"dmg")
    (tmp_path / "secret").write_text("outside\n")
    (tmp_path / "root2").mkdir()
    (tmp_path / "root2" / "file").write_text("sibling with a common prefix\n")
    return root


# --- is_safe_relative -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "booter",
        "i386/booter",
        "i386/x86_64/kernelcache",
        "NetBoot.dmg",
        ".",
        "./booter",
        "i386//booter",
        "i386/",
        "..booter",
        "booter..",
        "a/...",
        "name with spaces",
        "caf\u00e9",
    ],
)
def test_relative_name_is_safe(name: str) -> None:
    assert is_safe_relative(name) is True


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("..", id="dotdot"),
        pytest.param("../secret", id="leading-dotdot"),
        pytest.param("i386/../../secret", id="inner-dotdot"),
        pytest.param("i386/../booter", id="dotdot-that-stays-inside"),
        pytest.param("i386/..", id="trailing-dotdot"),
        pytest.param("/etc/passwd", id="absolute"),
        pytest.param("/", id="root"),
        pytest.param("//etc/passwd", id="double-slash-absolute"),
        pytest.param("booter\x00.txt", id="nul"),
        pytest.param("\x00", id="nul-only"),
        pytest.param("i386\\booter", id="backslash"),
        pytest.param("..\\secret", id="backslash-dotdot"),
        pytest.param("C:\\secret", id="windows-drive"),
    ],
)
def test_unsafe_name_is_rejected(name: str) -> None:
    assert is_safe_relative(name) is False


@settings(max_examples=200)
@given(st.text(max_size=30))
def test_safe_name_never_escapes_lexically(name: str) -> None:
    if is_safe_relative(name):
        assert name
        assert not name.startswith("/")
        assert "\x00" not in name
        assert "\\" not in name
        assert ".." not in name.split("/")


# --- resolve_within: accepted -----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["NetBoot.dmg", "i386/booter", "i386/x86_64/kernelcache", "./i386/booter", "i386//booter"],
)
def test_file_inside_resolves_to_its_real_path(base: Path, name: str) -> None:
    result = resolve_within(base, name)
    assert result == (base / name).resolve()
    assert result.is_file()


def test_pure_posix_path_is_accepted(base: Path) -> None:
    assert resolve_within(base, PurePosixPath("i386/booter")) == base / "i386" / "booter"


def test_base_itself_is_inside(base: Path) -> None:
    assert resolve_within(base, ".") == base.resolve()


def test_directory_inside_is_accepted(base: Path) -> None:
    assert resolve_within(base, "i386") == base / "i386"


def test_missing_file_returns_path_without_raising(base: Path) -> None:
    result = resolve_within(base, "i386/no-such-booter")
    assert result == base / "i386" / "no-such-booter"
    assert not result.exists()


def test_missing_directories_return_path_without_raising(base: Path) -> None:
    assert resolve_within(base, "ppc/x/booter") == base / "ppc" / "x" / "booter"


def test_symlink_inside_pointing_inside_resolves_to_target(base: Path) -> None:
    (base / "booter").symlink_to("i386/booter")
    assert resolve_within(base, "booter") == base / "i386" / "booter"


def test_absolute_symlink_pointing_inside_is_accepted(base: Path) -> None:
    (base / "image.dmg").symlink_to(base / "NetBoot.dmg")
    assert resolve_within(base, "image.dmg") == base / "NetBoot.dmg"


def test_symlinked_directory_inside_pointing_inside_is_accepted(base: Path) -> None:
    (base / "x86_64").symlink_to("i386/x86_64", target_is_directory=True)
    assert resolve_within(base, "x86_64/kernelcache") == base / "i386" / "x86_64" / "kernelcache"


def test_symlink_to_base_itself_is_accepted(base: Path) -> None:
    (base / "self").symlink_to(".", target_is_directory=True)
    assert resolve_within(base, "self/NetBoot.dmg") == base / "NetBoot.dmg"


def test_dangling_symlink_pointing_inside_is_accepted(base: Path) -> None:
    (base / "later.dmg").symlink_to("not-yet-built.dmg")
    assert resolve_within(base, "later.dmg") == base / "not-yet-built.dmg"


def test_symlinked_base_is_resolved_to_its_real_path(base: Path, tmp_path: Path) -> None:
    link = tmp_path / "link-to-root"
    link.symlink_to(base, target_is_directory=True)
    assert resolve_within(link, "i386/booter") == base / "i386" / "booter"


def test_relative_base_is_resolved(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(base.parent)
    assert resolve_within(Path("root"), "NetBoot.dmg") == base / "NetBoot.dmg"


# --- resolve_within: refused -------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("../secret", id="dotdot"),
        pytest.param("i386/../../secret", id="inner-dotdot"),
        pytest.param("i386/../booter", id="dotdot-even-if-inside"),
        pytest.param("..", id="parent"),
        pytest.param("/etc/passwd", id="absolute"),
        pytest.param("", id="empty"),
        pytest.param("booter\x00", id="nul"),
        pytest.param("i386\\booter", id="backslash"),
    ],
)
def test_unsafe_name_raises_path_outside_root(base: Path, name: str) -> None:
    with pytest.raises(PathOutsideRoot):
        resolve_within(base, name)


def test_symlink_pointing_outside_raises(base: Path, tmp_path: Path) -> None:
    (base / "passwd").symlink_to(tmp_path / "secret")
    with pytest.raises(PathOutsideRoot, match="outside"):
        resolve_within(base, "passwd")


def test_relative_symlink_climbing_out_raises(base: Path) -> None:
    (base / "i386" / "escape").symlink_to("../../secret")
    with pytest.raises(PathOutsideRoot):
        resolve_within(base, "i386/escape")


def test_symlinked_directory_leading_outside_raises(base: Path, tmp_path: Path) -> None:
    (base / "etc").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(PathOutsideRoot):
        resolve_within(base, "etc/secret")


def test_missing_file_below_symlinked_directory_outside_raises(base: Path, tmp_path: Path) -> None:
    (base / "etc").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(PathOutsideRoot):
        resolve_within(base, "etc/no-such-file")


def test_symlink_to_sibling_with_common_prefix_raises(base: Path, tmp_path: Path) -> None:
    # "/x/root2/file" starts with the string "/x/root" but is not below it.
    (base / "sibling").symlink_to(tmp_path / "root2" / "file")
    with pytest.raises(PathOutsideRoot):
        resolve_within(base, "sibling")


def test_symlink_to_parent_of_base_raises(base: Path) -> None:
    (base / "up").symlink_to("..", target_is_directory=True)
    with pytest.raises(PathOutsideRoot):
        resolve_within(base, "up")


def test_dangling_symlink_pointing_outside_raises(base: Path, tmp_path: Path) -> None:
    (base / "gone").symlink_to(tmp_path / "does-not-exist")
    with pytest.raises(PathOutsideRoot):
        resolve_within(base, "gone")


def test_path_outside_root_is_a_value_error() -> None:
    assert issubclass(PathOutsideRoot, ValueError)


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["a", "b", "", ".", "..", "/"]), max_size=6).map("/".join))
def test_resolved_path_is_never_outside_base(name: str) -> None:
    # No symlinks here, so either the name is refused or the result is below base.
    base = Path("/nonexistent-netboot-base")
    try:
        result = resolve_within(base, name)
    except PathOutsideRoot:
        assert not is_safe_relative(name)
    else:
        assert result == base or base in result.parents


def test_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    for name in ("loop", "a", "a/x"):
        with pytest.raises(SymlinkLoop):
            resolve_within(tmp_path, name)


# --- file_links_may_leave: the admin's programs directory ---------------------------------


def test_a_file_link_may_leave_when_allowed(base: Path, tmp_path: Path) -> None:
    (base / "ipxe.efi").symlink_to(tmp_path / "secret")
    with pytest.raises(PathOutsideRoot):
        resolve_within(base, "ipxe.efi")
    assert resolve_within(base, "ipxe.efi", file_links_may_leave=True) == tmp_path / "secret"


def test_directories_along_the_name_must_stay_inside_even_then(base: Path, tmp_path: Path) -> None:
    (base / "sibling").symlink_to(tmp_path / "root2")
    with pytest.raises(PathOutsideRoot):
        resolve_within(base, "sibling/file", file_links_may_leave=True)
    with pytest.raises(PathOutsideRoot):
        resolve_within(base, "../secret", file_links_may_leave=True)
    inside = resolve_within(base, "i386/x86_64/kernelcache", file_links_may_leave=True)
    assert inside == (base / "i386" / "x86_64" / "kernelcache").resolve()
    assert resolve_within(base, ".", file_links_may_leave=True) == base.resolve()


def test_a_looping_file_link_is_still_a_loop(base: Path) -> None:
    (base / "loop.efi").symlink_to("loop.efi")
    with pytest.raises(SymlinkLoop):
        resolve_within(base, "loop.efi", file_links_may_leave=True)
