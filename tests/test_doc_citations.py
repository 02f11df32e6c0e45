"""Every citation of a protocol document names a document and a section that exist.

Code and tests justify their decision tables by `docs/protocols/<file>.md §N`
(or `§N.M`); a successor checks a rule against the section it names, so a
citation of a renumbered or missing section is a broken promise. This test
reads the section numbers from the documents' headings (outside code blocks)
and checks every citation in the repository's Python and Markdown files, the
bare `§N` cross-references inside the protocol documents too. It also fails
on references to the research notes' old location outside the repository.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
PROTOCOLS = REPOSITORY / "docs" / "protocols"
SCANNED = ("netboot", "services", "tests", "benchmarks", "docs", "nbimages", "README.md")

CITATION = re.compile(r"docs/protocols/([\w.-]+\.md)(?:\s+§(\d+(?:\.\d+)*))?")
BARE_SECTION = re.compile(r"(RFC \d+ |\.md`? )?§(\d+(?:\.\d+)*)")
SHORT_CITATION = re.compile(r"(?<![/\w])(?:bsdp|pxe|udif|nbi)\.md`? §\d")
"""A section cited without the document's path, which a reader cannot follow from any file."""
HEADING = re.compile(r"^#{2,4}\s+(?:(\d+(?:\.\d+)*)\.?\s)?(.*)$")
UNNUMBERED_HEADINGS = {"Sources"}
# Built from parts so that this file does not match itself.
OUTSIDE_REFERENCES = ("notes" + " section", "shared" + "/notes")


def scanned_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        path = REPOSITORY / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.suffix in (".py", ".md"))
    return files


def protocol_documents() -> list[Path]:
    return sorted(p for p in PROTOCOLS.glob("*.md") if p.name != "README.md")


@cache
def headings(document: Path) -> tuple[tuple[str | None, str], ...]:
    """(section number or None, title) of each `##`..`####` heading outside code blocks."""
    found: list[tuple[str | None, str]] = []
    in_code = False
    for line in document.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = None if in_code else HEADING.match(line)
        if match:
            found.append((match.group(1), match.group(2).strip()))
    return tuple(found)


def sections(document: Path) -> set[str]:
    return {number for number, _ in headings(document) if number is not None}


def test_the_protocol_documents_exist() -> None:
    names = {p.name for p in protocol_documents()}
    assert names == {"bsdp.md", "dhcpv6.md", "hfsplus.md", "nbi.md", "pxe.md", "tftp.md", "udif.md"}
    assert (PROTOCOLS / "README.md").is_file()


@pytest.mark.parametrize("document", protocol_documents(), ids=lambda p: p.name)
def test_every_section_heading_is_numbered_once(document: Path) -> None:
    numbers = [number for number, _ in headings(document)]
    unnumbered = [title for number, title in headings(document) if number is None]
    assert [t for t in unnumbered if t not in UNNUMBERED_HEADINGS] == []
    assert len(numbers) == len(set(numbers)), "a section number is used twice"


def test_every_citation_names_an_existing_document_and_section() -> None:
    broken: list[str] = []
    citations = 0
    for path in scanned_files():
        text = path.read_text()
        for match in CITATION.finditer(text):
            citations += 1
            where = f"{path.relative_to(REPOSITORY)}:{text.count(chr(10), 0, match.start()) + 1}"
            document = PROTOCOLS / match.group(1)
            if not document.is_file():
                broken.append(f"{where}: no document {match.group(0)}")
            elif match.group(2) is not None and match.group(2) not in sections(document):
                broken.append(f"{where}: {match.group(1)} has no section §{match.group(2)}")
    assert broken == []
    assert citations > 50, "the citation pattern no longer finds the code's citations"


@pytest.mark.parametrize("document", protocol_documents(), ids=lambda p: p.name)
def test_cross_references_inside_a_document_exist(document: Path) -> None:
    """A bare `§N` in a protocol document names one of its own sections."""
    own = sections(document)
    missing = []
    for match in BARE_SECTION.finditer(document.read_text()):
        prefix = match.group(1)
        if prefix is not None:  # an RFC's section, or another document's (checked above)
            continue
        if match.group(2) not in own:
            missing.append(f"§{match.group(2)}")
    assert missing == []


def test_citations_name_the_document_by_its_path() -> None:
    short = [
        f"{path.relative_to(REPOSITORY)}: {match.group(0)}"
        for path in scanned_files()
        for match in SHORT_CITATION.finditer(path.read_text())
    ]
    assert short == []


def test_no_reference_points_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(REPOSITORY)}: {needle!r}"
        for path in scanned_files()
        for needle in OUTSIDE_REFERENCES
        if needle in path.read_text().lower()
    ]
    assert found == []
