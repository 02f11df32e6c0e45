"""pytest glue for the reliability tests: skip where a tool the storm lab needs is missing."""

from __future__ import annotations

import shutil

import pytest


def require_xorriso() -> None:
    """The storm's root image is an HFS+ volume built by xorriso."""
    if shutil.which("xorriso") is None:
        pytest.skip("needs xorriso (Debian: xorriso) to build the HFS+ root image")
