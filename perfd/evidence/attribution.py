"""Name the commits of a range that touched a hot function.

A commit is a suspect for function F when, in base..head, it
  1. changed F's body (`git log -L :F:file`, git's own C function boundaries), or
  2. changed a line that mentions one of the macros F's body uses (`git log -G`): a tuning
     constant or a feature flag defined in a header changes F's behaviour without touching F.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from perfd.runner.git import Repository

C_SOURCES = ("*.c", "*.h", "*.cc", "*.cpp", "*.cxx", "*.hh", "*.hpp", "*.inc")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MACRO = re.compile(r"\b([A-Z][A-Z0-9_]{3,})\b")


@dataclass(frozen=True, slots=True)
class Suspect:
    sha: str
    subject: str
    function: str
    why: str  # "changed minilib_parse_request in src/request.c" / "changed MINILIB_SLOW_PARSE_PCT"


def function_body(source: str, function: str) -> str | None:
    """The text of function's definition in a C source, from its name to the matching brace."""
    for match in re.finditer(rf"\b{re.escape(function)}\s*\(", source):
        # A definition: after the closing parenthesis of the parameters comes '{', not ';'.
        depth, i = 0, match.end() - 1
        while i < len(source):
            if source[i] == "(":
                depth += 1
            elif source[i] == ")":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        rest = source[i + 1:].lstrip()
        if not rest.startswith("{"):
            continue
        start = source.index("{", i)
        depth = 0
        for j in range(start, len(source)):
            if source[j] == "{":
                depth += 1
            elif source[j] == "}":
                depth -= 1
                if depth == 0:
                    return source[match.start():j + 1]
    return None


def suspects_for(repo: Repository, base: str, head: str, function: str) -> list[Suspect]:
    """Commits in base..head that touched function or the macros its body uses, oldest first."""
    if not _IDENT.match(function):
        return []  # "[unknown]", C++ signatures etc.: nothing git can look up safely
    found: dict[str, Suspect] = {}

    def add(sha: str, subject: str, why: str) -> None:
        found.setdefault(sha, Suspect(sha, subject, function, why))

    for path in repo.files_mentioning(head, function, C_SOURCES):
        body = function_body(repo.show_file(head, path), function)
        if body is None:
            continue
        for sha, subject in repo.commits_touching_function(base, head, function, path):
            add(sha, subject, f"changed {function} in {path}")
        for macro in sorted(set(_MACRO.findall(body))):
            for sha, subject in repo.commits_changing_lines_matching(base, head, rf"\b{macro}\b"):
                add(sha, subject, f"changed {macro}, used by {function}")
    position = {sha: i for i, (sha, _) in enumerate(repo.commits_between(base, head))}
    return sorted(found.values(), key=lambda s: position.get(s.sha, -1))
