"""HTTP request paths: which file each means, or why it is refused (netboot.http.paths).

Each segment is percent-decoded on its own and judged after decoding, so an
encoded `..`, slash, backslash or NUL is a 400 like a literal one; a set that
is not served, a missing name or a symlink leaving its set is a 404.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.http.paths import HttpNamespace, Refusal, Resolved, decode_segments
from netboot.nbi.catalog import scan_catalog
from netboot_lab.factories import APM_IMAGE, FAT_EFI_BOOTER, PE_BOOTER, make_set

KERNEL = b"kernelcache " * 10

# --- decode_segments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "segments"),
    [
        pytest.param(b"/", [], id="root"),
        pytest.param(b"/Alpha.nbi/NetBoot.dmg", ["Alpha.nbi", "NetBoot.dmg"], id="plain"),
        pytest.param(b"/Alpha.nbi/i386/booter", ["Alpha.nbi", "i386", "booter"], id="deep"),
        pytest.param(b"/Two%20Words.nbi", ["Two Words.nbi"], id="encoded-space"),
        pytest.param(b"/caf%C3%A9/%e2%9c%93", ["caf\u00e9", "\u2713"], id="encoded-utf8"),
        pytest.param("/caf\u00e9".encode(), ["caf\u00e9"], id="raw-utf8"),
        pytest.param(b"/%41lpha.nbi", ["Alpha.nbi"], id="encoded-letter"),
        pytest.param(b"/a+b", ["a+b"], id="plus-is-not-a-space"),
        pytest.param(b"/%2541", ["%41"], id="decoded-once-only"),
        pytest.param(b"/%252e%252e", ["%2e%2e"], id="double-encoded-dots-are-a-name"),
        pytest.param(b"/.../..a/a..", ["...", "..a", "a.."], id="dots-inside-names"),
        pytest.param(b"/.hidden", [".hidden"], id="leading-dot-name"),
        pytest.param(b"//Alpha.nbi///i386//booter", ["Alpha.nbi", "i386", "booter"], id="empty"),
        pytest.param(b"/Alpha.nbi/", ["Alpha.nbi"], id="trailing-slash"),
        pytest.param(b"///", [], id="only-slashes"),
    ],
)
def test_decode_segments(raw: bytes, segments: list[str]) -> None:
    assert decode_segments(raw) == segments


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"Alpha.nbi/NetBoot.dmg", id="no-leading-slash"),
        pytest.param(b"%2fAlpha.nbi", id="encoded-leading-slash"),
        pytest.param(b"http://host/Alpha.nbi", id="absolute-form"),
        pytest.param(b"*", id="asterisk-form"),
        pytest.param(b"/.", id="dot"),
        pytest.param(b"/..", id="dotdot"),
        pytest.param(b"/Alpha.nbi/../secret", id="dotdot-inside"),
        pytest.param(b"/Alpha.nbi/./NetBoot.dmg", id="dot-inside"),
        pytest.param(b"/Alpha.nbi/..", id="dotdot-last"),
        pytest.param(b"/%2e", id="encoded-dot"),
        pytest.param(b"/%2e%2e", id="encoded-dotdot"),
        pytest.param(b"/%2E%2e", id="encoded-dotdot-mixed-case"),
        pytest.param(b"/.%2e", id="half-encoded-dotdot"),
        pytest.param(b"/Alpha.nbi/%2e%2e/%2e%2e/secret", id="encoded-dotdot-inside"),
        pytest.param(b"/%00", id="encoded-nul"),
        pytest.param(b"/Alpha.nbi/NetBoot.dmg%00.txt", id="encoded-nul-in-name"),
        pytest.param(b"/a\x00b", id="raw-nul"),
        pytest.param(b"/%5c", id="encoded-backslash"),
        pytest.param(b"/Alpha.nbi/..%5c..%5csecret", id="encoded-backslash-traversal"),
        pytest.param(b"/a\\b", id="raw-backslash"),
        pytest.param(b"/%2f", id="encoded-slash"),
        pytest.param(b"/Alpha.nbi%2fNetBoot.dmg", id="encoded-slash-in-name"),
        pytest.param(b"/Alpha.nbi/..%2Fsecret", id="encoded-slash-uppercase"),
        pytest.param(b"/%ff", id="invalid-utf8"),
        pytest.param(b"/\xff", id="raw-invalid-utf8"),
        pytest.param(b"/%c3%28", id="bad-continuation"),
        pytest.param(b"/%c3", id="truncated-sequence"),
        pytest.param(b"/%c0%ae%c0%ae", id="overlong-dotdot"),
        pytest.param(b"/%ed%a0%80", id="encoded-surrogate"),
    ],
)
def test_decode_segments_refuses_with_400(raw: bytes) -> None:
    result = decode_segments(raw)
    assert isinstance(result, Refusal), result
    assert result.status == 400
    assert result.reason


@settings(max_examples=300)
@given(
    st.one_of(
        st.binary(max_size=40),
        st.lists(
            st.sampled_from(
                [b"a", b"", b".", b"..", b"%2e", b"%2E", b"%2f", b"%5c", b"%00", b"%ff", b"%c3"]
            ),
            max_size=6,
        ).map(lambda parts: b"/" + b"/".join(parts)),
    )
)
def test_decoded_segments_are_always_plain_names(raw: bytes) -> None:
    result = decode_segments(raw)
    if isinstance(result, Refusal):
        assert result.status == 400
        return
    for segment in result:
        assert segment not in ("", ".", "..")
        assert "/" not in segment
        assert "\\" not in segment
        assert "\x00" not in segment


# --- HttpNamespace ---------------------------------------------------------------------


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """Alpha and "Two Words" at the top, Beta in a sharepoint, disabled and broken sets."""
    root = tmp_path / "images"
    alpha = make_set(root, "Alpha", Index=1, booter=FAT_EFI_BOOTER)
    (alpha / "i386" / "x86_64").mkdir()
    (alpha / "i386" / "x86_64" / "kernelcache").write_bytes(KERNEL)
    make_set(root / "NetBootSP0", "Beta", Index=2)
    make_set(root, "Two Words", Index=5)
    make_set(root, "Off", Index=3, IsEnabled=False)
    make_set(root, "Broken", Index=4, root_image=None)  # RootPath names a missing file
    make_set(root, "Garbled", plist=b"not a plist")
    (root / "loose-file").write_bytes(b"in the image root, in no set")
    (tmp_path / "secret").write_bytes(b"outside every root")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "file").write_bytes(b"outside, in a directory")
    return root


@pytest.fixture
def namespace(image_root: Path) -> HttpNamespace:
    return HttpNamespace(scan_catalog(image_root))


def served(namespace: HttpNamespace, raw: bytes) -> Resolved:
    result = namespace.resolve(raw)
    assert isinstance(result, Resolved), result
    return result


def refused(namespace: HttpNamespace, raw: bytes) -> int:
    result = namespace.resolve(raw)
    assert isinstance(result, Refusal), result
    assert result.reason
    return result.status


def test_the_catalog_is_what_the_tests_expect(image_root: Path) -> None:
    catalog = scan_catalog(image_root)
    servable = sorted(str(s.path) for s in catalog.servable)
    assert servable == ["Alpha.nbi", "NetBootSP0/Beta.nbi", "Two Words.nbi"]
    assert len(catalog) == 6


@pytest.mark.parametrize(
    ("raw", "relative", "content"),
    [
        (b"/Alpha.nbi/NetBoot.dmg", "Alpha.nbi/NetBoot.dmg", APM_IMAGE),
        (b"/Alpha.nbi/i386/booter", "Alpha.nbi/i386/booter", FAT_EFI_BOOTER),
        (b"/Alpha.nbi/i386/x86_64/kernelcache", "Alpha.nbi/i386/x86_64/kernelcache", KERNEL),
        (b"/Alpha.nbi//i386///booter", "Alpha.nbi/i386/booter", FAT_EFI_BOOTER),
        (b"/%41lpha.nbi/NetBoot%2Edmg", "Alpha.nbi/NetBoot.dmg", APM_IMAGE),
        (b"/NetBootSP0/Beta.nbi/NetBoot.dmg", "NetBootSP0/Beta.nbi/NetBoot.dmg", APM_IMAGE),
        (b"/NetBootSP0/Beta.nbi/i386/booter", "NetBootSP0/Beta.nbi/i386/booter", PE_BOOTER),
        (b"/Two%20Words.nbi/NetBoot.dmg", "Two Words.nbi/NetBoot.dmg", APM_IMAGE),
        (b"/Two%20Words.nbi/i386/booter", "Two Words.nbi/i386/booter", PE_BOOTER),
    ],
)
def test_files_of_servable_sets_are_served(
    namespace: HttpNamespace, image_root: Path, raw: bytes, relative: str, content: bytes
) -> None:
    result = served(namespace, raw)
    assert result.path == (image_root / relative).resolve()
    assert result.path.read_bytes() == content
    assert result.name == PurePosixPath(relative)


@pytest.mark.parametrize(
    ("raw", "relative"),
    [
        (b"/Alpha.nbi/", "Alpha.nbi"),
        (b"/Alpha.nbi", "Alpha.nbi"),
        (b"/Alpha.nbi/i386/", "Alpha.nbi/i386"),
        (b"/NetBootSP0/Beta.nbi/", "NetBootSP0/Beta.nbi"),
    ],
)
def test_directories_of_a_set_resolve_for_the_service_to_judge(
    namespace: HttpNamespace, image_root: Path, raw: bytes, relative: str
) -> None:
    result = served(namespace, raw)
    assert result.path == (image_root / relative).resolve()
    assert result.path.is_dir()
    assert result.name == PurePosixPath(relative)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"/", id="image-root"),
        pytest.param(b"//", id="image-root-doubled"),
        pytest.param(b"/NetBootSP0/", id="sharepoint"),
        pytest.param(b"/NetBootSP0", id="sharepoint-no-slash"),
        pytest.param(b"/loose-file", id="file-in-no-set"),
        pytest.param(b"/Gamma.nbi/NetBoot.dmg", id="unknown-set"),
        pytest.param(b"/alpha.nbi/NetBoot.dmg", id="wrong-case"),
        pytest.param(b"/Beta.nbi/NetBoot.dmg", id="sharepoint-set-without-sharepoint"),
        pytest.param(b"/NetBootSP1/Beta.nbi/NetBoot.dmg", id="wrong-sharepoint"),
        pytest.param(b"/Two+Words.nbi/NetBoot.dmg", id="plus-is-not-a-space"),
        pytest.param(b"/Off.nbi/NetBoot.dmg", id="disabled-set"),
        pytest.param(b"/Off.nbi/", id="disabled-set-directory"),
        pytest.param(b"/Broken.nbi/i386/booter", id="broken-set"),
        pytest.param(b"/Broken.nbi/NBImageInfo.plist", id="broken-set-plist"),
        pytest.param(b"/Garbled.nbi/NBImageInfo.plist", id="unparsable-set"),
        pytest.param(b"/Alpha.nbi/missing", id="missing-file"),
        pytest.param(b"/Alpha.nbi/i386/missing", id="missing-nested-file"),
        pytest.param(b"/Alpha.nbi/NetBoot.dmg/inner", id="file-used-as-directory"),
        pytest.param(b"/Alpha.nbi/x86_64/kernelcache", id="wrong-directory"),
    ],
)
def test_refused_with_404(namespace: HttpNamespace, raw: bytes) -> None:
    assert refused(namespace, raw) == 404


@pytest.mark.parametrize(
    "raw",
    [
        b"Alpha.nbi/NetBoot.dmg",
        b"/Alpha.nbi/../secret",
        b"/Alpha.nbi/%2e%2e/%2e%2e/secret",
        b"/Alpha.nbi/%2E%2e/Off.nbi/NetBoot.dmg",
        b"/NetBootSP0/Beta.nbi/%2e%2e/%2e%2e/Alpha.nbi/NetBoot.dmg",
        b"/Alpha.nbi%2fNetBoot.dmg",
        b"/Alpha.nbi/i386%2fbooter",
        b"/Alpha.nbi/i386%5cbooter",
        b"/Alpha.nbi/NetBoot.dmg%00",
        b"/Alpha.nbi/%ff",
        b"/%2e%2e/secret",
    ],
)
def test_bad_syntax_is_refused_with_400_before_any_lookup(
    namespace: HttpNamespace, raw: bytes
) -> None:
    assert refused(namespace, raw) == 400


# --- symlinks, created after the scan so the catalog still serves the set -----------------


def test_a_symlink_to_a_file_outside_is_refused(image_root: Path, tmp_path: Path) -> None:
    namespace = HttpNamespace(scan_catalog(image_root))
    (image_root / "Alpha.nbi" / "escape").symlink_to(tmp_path / "secret")
    assert refused(namespace, b"/Alpha.nbi/escape") == 404


def test_a_symlink_to_a_directory_outside_is_refused(image_root: Path, tmp_path: Path) -> None:
    namespace = HttpNamespace(scan_catalog(image_root))
    (image_root / "Alpha.nbi" / "i386" / "more").symlink_to(tmp_path / "outside")
    assert refused(namespace, b"/Alpha.nbi/i386/more/file") == 404
    assert refused(namespace, b"/Alpha.nbi/i386/more/") == 404


def test_a_symlink_into_another_set_is_refused(image_root: Path) -> None:
    """Leaving the set is enough to be refused, even when the target is inside the root."""
    namespace = HttpNamespace(scan_catalog(image_root))
    (image_root / "Alpha.nbi" / "beta").symlink_to(image_root / "NetBootSP0" / "Beta.nbi")
    (image_root / "Alpha.nbi" / "off.dmg").symlink_to(image_root / "Off.nbi" / "NetBoot.dmg")
    assert refused(namespace, b"/Alpha.nbi/beta/NetBoot.dmg") == 404
    assert refused(namespace, b"/Alpha.nbi/off.dmg") == 404


def test_a_relative_symlink_climbing_out_is_refused(image_root: Path) -> None:
    namespace = HttpNamespace(scan_catalog(image_root))
    (image_root / "Alpha.nbi" / "i386" / "up").symlink_to("../../../secret")
    assert refused(namespace, b"/Alpha.nbi/i386/up") == 404


def test_a_symlink_loop_is_refused(image_root: Path) -> None:
    namespace = HttpNamespace(scan_catalog(image_root))
    (image_root / "Alpha.nbi" / "loop").symlink_to("loop")
    assert refused(namespace, b"/Alpha.nbi/loop") == 404


def test_a_symlink_staying_inside_the_set_is_followed(image_root: Path) -> None:
    namespace = HttpNamespace(scan_catalog(image_root))
    (image_root / "Alpha.nbi" / "root.dmg").symlink_to("NetBoot.dmg")
    result = served(namespace, b"/Alpha.nbi/root.dmg")
    assert result.path == (image_root / "Alpha.nbi" / "NetBoot.dmg").resolve()
    assert result.name == PurePosixPath("Alpha.nbi/root.dmg")


def test_a_dangling_symlink_inside_the_set_is_missing(image_root: Path) -> None:
    namespace = HttpNamespace(scan_catalog(image_root))
    (image_root / "Alpha.nbi" / "dangling").symlink_to("nowhere")
    assert refused(namespace, b"/Alpha.nbi/dangling") == 404


# --- names the file system cannot hold ---------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"/Alpha.nbi/" + b"x" * 256, id="segment-longer-than-NAME_MAX"),
        pytest.param(b"/Alpha.nbi/" + b"x/" * 2100 + b"x", id="path-longer-than-PATH_MAX"),
    ],
)
def test_a_name_too_long_for_the_file_system_is_refused(
    namespace: HttpNamespace, raw: bytes
) -> None:
    result = namespace.resolve(raw)
    assert isinstance(result, Refusal), result
    assert 400 <= result.status < 500
