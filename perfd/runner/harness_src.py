"""Where the C harness sources are: inside the installed package, or harness/ in a checkout."""

from __future__ import annotations

from pathlib import Path

from perfd.errors import PerfdError

HARNESS_FILES = ("perfd_harness.h", "perfd_harness.c")


def harness_dir() -> Path:
    """Directory holding perfd_harness.h and perfd_harness.c."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_harness", package.parent / "harness"):
        if all((candidate / f).is_file() for f in HARNESS_FILES):
            return candidate
    raise PerfdError(f"perfd's C harness sources are missing (looked in {package / '_harness'})")


def harness_cflags() -> str:
    """Compiler flags for a benchmark built against the harness."""
    return f"-std=c11 -O2 -g -fno-omit-frame-pointer -I{harness_dir()}"
