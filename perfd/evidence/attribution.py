"""Name the commits of a range that touched a hot function, or the static helpers inlined into it.

Optimised C inlines ``static`` helpers all the time: a profile then charges a helper's time to
the public function it was inlined into, and a commit that changed only the helper never
touched that function's own lines. So a commit is a suspect for function F, defined in file X,
when, in base..head, it
  1. changed F's definition, or
  2. changed the definition of a static function of X's translation unit that F calls,
     directly or through other such functions (at most ``CALLEE_DEPTH`` calls deep): the
     helpers the compiler may have inlined into F, defined in X or in a project header X
     includes (``static inline`` helpers in headers; at most ``INCLUDE_DEPTH`` includes
     deep), or
  3. changed a line that mentions one of the macros those bodies use (`git log -G`): a tuning
     constant or a feature flag defined in a header changes F's behaviour without touching F.

"Changed a definition" compares the function's text (comments and string contents blanked,
whitespace collapsed) at each commit of the range that changed the file with its text at that
commit's first parent, so a moved function, a reformatting or an edited comment is not a
change, and a prototype earlier in the file does not confuse it. Calls are C identifiers
followed by ``(`` in a body, kept when the unit defines a static function of that name
(keywords, macros, library and extern functions drop out on their own). A frame name
``h (inlined)`` from a profile with inline frames (see :mod:`perfd.evidence.profile`) is
looked up as ``h``; GCC clone suffixes (``.isra.0``, ``.constprop.0``, ``.part.0``,
``.cold``) are dropped.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from perfd.errors import RepositoryError
from perfd.runner.git import Repository

C_SOURCES = ("*.c", "*.h", "*.cc", "*.cpp", "*.cxx", "*.hh", "*.hpp", "*.inc")
# How many calls deep the static callees of a grown function are followed: the public
# function, the helper it calls, that helper's helpers... (minilib's parser: public ->
# parse_into -> parse_query -> percent_decode -> hex_value is 4).
CALLEE_DEPTH = 4
# How many #include levels of project headers make up a file's translation unit.
INCLUDE_DEPTH = 3
# An include resolved by file name (not relative to the including file) that matches more
# files than this is ambiguous (config.h in every directory) and left out.
MAX_INCLUDE_MATCHES = 3
C_HEADERS = (".h", ".hh", ".hpp", ".hxx", ".inc")
INLINED_SUFFIX = " (inlined)"  # perfd.evidence.profile.INLINED_SUFFIX; kept here to stay import-light

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MACRO = re.compile(r"\b([A-Z][A-Z0-9_]{3,})\b")
# GCC's names for clones and split parts of a function: foo.isra.0, foo.constprop.3, foo.cold.
_CLONE_SUFFIX = re.compile(r"(?:\.(?:isra|constprop|part|cold|lto_priv|localalias)(?:\.\d+)?)+$")
# Comments and the contents of string and character literals: blanked (newlines kept) before
# anything looks for calls or definitions, so neither a comment nor "f(" in a string counts.
_NOISE = re.compile(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)
# A preprocessor directive with its continuation lines.
_DIRECTIVE = re.compile(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", re.M)
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*["<]([^">\n]+)[">]', re.M)
_OBJECT_MACRO = re.compile(r"#\s*define\s+([A-Za-z_]\w*)\b(?!\()(.*)", re.S)
_CALL = re.compile(r"(?<![\w.>])([A-Za-z_]\w*)\s*\(")
_NAME_BEFORE = re.compile(r"([A-Za-z_]\w*)\s*$")
_OPEN_BRACE = re.compile(r"\s*\{")
_C_KEYWORDS = frozenset({
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof", "_Atomic", "_Bool",
    "_Complex", "_Generic", "_Noreturn", "_Static_assert", "_Thread_local", "alignas", "alignof",
    "asm", "typeof", "__asm__", "__attribute__", "__declspec", "__typeof__", "__extension__",
    "__inline", "__inline__", "__restrict",
})
_ATTRIBUTE_WORDS = frozenset(("__attribute__", "__declspec", "__asm__", "asm"))


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
        brace = _OPEN_BRACE.match(source, i + 1)
        if brace is None:
            continue
        start = brace.end() - 1
        depth = 0
        for j in range(start, len(source)):
            if source[j] == "{":
                depth += 1
            elif source[j] == "}":
                depth -= 1
                if depth == 0:
                    return source[match.start():j + 1]
    return None


# ---- a small C reader: definitions and calls ------------------------------------------------


def code_only(source: str) -> str:
    """The source with comments and the contents of string/char literals blanked to spaces
    (newlines kept, so offsets and line numbers stay the same)."""
    return _NOISE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), source)


def _object_macros(code: str) -> dict[str, str]:
    """Object-like macros of a comment-free source: name -> replacement text."""
    out: dict[str, str] = {}
    for directive in _DIRECTIVE.findall(code):
        m = _OBJECT_MACRO.match(directive.strip())
        if m:
            out.setdefault(m.group(1), m.group(2).replace("\\\n", " "))
    return out


def _mentions_static(specifiers: str, macros: Mapping[str, str], depth: int = 0) -> bool:
    words = re.findall(r"[A-Za-z_]\w*", specifiers)
    if "static" in words:
        return True
    # "#define INLINE static inline __attribute__((always_inline))" and the like
    return depth < 3 and any(w in macros and _mentions_static(macros[w], macros, depth + 1)
                             for w in words)


def _matching_open(text: str, close: int) -> int:
    """Index of the '(' matching the ')' at ``close``, or -1."""
    depth = 0
    for i in range(close, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _defined_name(header: str) -> tuple[str, int] | None:
    """(name, offset) of the function a top-level header like ``static int f(int x)`` defines."""
    end = len(header.rstrip())
    while end > 0 and header[end - 1] == ")":
        open_at = _matching_open(header, end - 1)
        if open_at < 0:
            return None
        m = _NAME_BEFORE.search(header, 0, open_at)
        if m is None:
            return None
        if m.group(1) in _ATTRIBUTE_WORDS:  # "f(void) __attribute__((cold)) {": step over it
            end = len(header[:m.start()].rstrip())
            continue
        if m.group(1) in _C_KEYWORDS:
            return None
        return m.group(1), m.start()
    return None


def c_functions(source: str, macros: Mapping[str, str] | None = None) -> dict[str, bool]:
    """The functions a C source defines, in order: name -> whether it is ``static`` (directly or
    through an object-like macro, e.g. ``#define INLINE static inline``, of the file or of
    ``macros``: those of the headers it includes)."""
    code = code_only(source)
    macros = {**(macros or {}), **_object_macros(code)}
    code = _DIRECTIVE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), code)
    out: dict[str, bool] = {}
    depth, boundary = 0, 0
    for m in re.finditer(r"[{};]", code):
        c = m.group()
        if c == ";":
            if depth == 0:
                boundary = m.end()
        elif c == "{":
            if depth == 0:
                header = code[boundary:m.start()]
                found = _defined_name(header)
                if found is not None and found[0] not in out:
                    out[found[0]] = _mentions_static(header[:found[1]], macros)
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                boundary = m.end()
    return out


def called_names(body: str) -> list[str]:
    """Identifiers followed by '(' in a C body, first occurrence order, without C keywords and
    member calls (``p->f(``, ``s.f(``). Comments and strings must already be blanked."""
    seen: dict[str, None] = {}
    for m in _CALL.finditer(body):
        name = m.group(1)
        if name not in _C_KEYWORDS:
            seen.setdefault(name)
    return list(seen)


def included_names(source: str) -> list[str]:
    """The names of a C source's ``#include`` directives ("x.h" and <x.h> alike), in order."""
    return _INCLUDE.findall(source)


class TranslationUnit:
    """What attribution needs of a translation unit, read once: ``files`` is path -> source,
    the file that defines the functions asked about first, then the headers it includes (a
    name defined twice counts where it comes first)."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.home = next(iter(files), None)
        self.code = {path: code_only(source) for path, source in files.items()}
        macros: dict[str, str] = {}
        for code in self.code.values():
            for name, text in _object_macros(code).items():
                macros.setdefault(name, text)
        self.where: dict[str, str] = {}  # function -> the path that defines it
        self.statics: set[str] = set()
        for path, code in self.code.items():
            for name, is_static in c_functions(code, macros).items():
                if name not in self.where:
                    self.where[name] = path
                    if is_static:
                        self.statics.add(name)

    def static_callees(self, function: str,
                       depth: int = CALLEE_DEPTH) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Static functions of the unit that ``function`` calls, directly or through other
        static functions of the unit, at most ``depth`` calls deep: helper -> (the path that
        defines it, the call path from ``function``: ``("f", "g", "h")`` for f -> g -> h),
        shortest paths, nearest first. Empty when the first file does not define
        ``function``."""
        if self.home is None or self.where.get(function) != self.home:
            return {}
        paths: dict[str, tuple[str, ...]] = {function: (function,)}
        frontier = [function]
        for _ in range(depth):
            following: list[str] = []
            for caller in frontier:
                body = function_body(self.code[self.where[caller]], caller)
                if body is None:
                    continue
                for callee in called_names(body[body.index("{"):]):
                    if callee in self.statics and callee not in paths:
                        paths[callee] = (*paths[caller], callee)
                        following.append(callee)
            frontier = following
        del paths[function]
        return {helper: (self.where[helper], chain) for helper, chain in paths.items()}


def unit_static_callees(unit: Mapping[str, str], function: str,
                        depth: int = CALLEE_DEPTH) -> dict[str, tuple[str, tuple[str, ...]]]:
    """:meth:`TranslationUnit.static_callees` of the unit of ``unit``'s files."""
    return TranslationUnit(unit).static_callees(function, depth)


def static_callees(source: str, function: str, depth: int = CALLEE_DEPTH) -> dict[str, tuple[str, ...]]:
    """:func:`unit_static_callees` of a unit of one file, without the paths."""
    return {helper: chain for helper, (_, chain) in unit_static_callees({"": source}, function,
                                                                         depth).items()}


def _definition(code: str, function: str) -> str | None:
    """function's definition in comment-free code with whitespace collapsed (None: not defined)."""
    body = function_body(code, function)
    return None if body is None else " ".join(body.split())


def source_name(frame: str) -> str:
    """The C name behind a profile frame: ``h (inlined)`` -> ``h``, ``f.isra.0`` -> ``f``."""
    return _CLONE_SUFFIX.sub("", frame.removesuffix(INLINED_SUFFIX))


# ---- suspects -------------------------------------------------------------------------------


class Attribution:
    """Suspect commits of one range of one repository; file texts, translation units and git
    log answers are read once and shared by every function asked about."""

    def __init__(self, repo: Repository, base: str, head: str) -> None:
        self.repo, self.base, self.head = repo, base, head
        self._text: dict[tuple[str, str], str | None] = {}
        self._code: dict[tuple[str, str], str | None] = {}
        self._headers: list[str] | None = None
        self._units: dict[str, TranslationUnit] = {}
        self._touching: dict[str, list[tuple[str, str]]] = {}
        self._macro_commits: dict[str, list[tuple[str, str]]] = {}
        self._commits: list[tuple[str, str]] | None = None

    def commits(self) -> list[tuple[str, str]]:
        """(sha, subject) of base..head, oldest first."""
        if self._commits is None:
            self._commits = self.repo.commits_between(self.base, self.head)
        return self._commits

    def _text_at(self, rev: str, path: str) -> str | None:
        """path at rev (None: no such file in that commit)."""
        key = (rev, path)
        if key not in self._text:
            try:
                self._text[key] = self.repo.show_file(rev, path)
            except RepositoryError:
                self._text[key] = None  # added or removed by the range
        return self._text[key]

    def _code_at(self, rev: str, path: str) -> str | None:
        """path at rev with comments and strings blanked (None: no such file in that commit)."""
        key = (rev, path)
        if key not in self._code:
            text = self._text_at(rev, path)
            self._code[key] = None if text is None else code_only(text)
        return self._code[key]

    def _resolve_include(self, including: str, name: str) -> list[str]:
        """The project headers at head an ``#include`` of ``name`` in ``including`` may mean:
        the file relative to the including one, else the headers whose path ends with the
        name (an -I directory of the build), unless there are too many to tell."""
        if self._headers is None:
            self._headers = [p for p in self.repo.files_at(self.head) if p.endswith(C_HEADERS)]
        relative = posixpath.normpath(posixpath.join(posixpath.dirname(including), name))
        if relative in self._headers:
            return [relative]
        matches = [p for p in self._headers if p == name or p.endswith("/" + name)]
        return matches if len(matches) <= MAX_INCLUDE_MATCHES else []

    def unit(self, path: str) -> TranslationUnit:
        """path's translation unit at head as far as the project holds it: path and the project
        headers it includes, at most INCLUDE_DEPTH levels (read once per path)."""
        if path in self._units:
            return self._units[path]
        unit: dict[str, str] = {}
        level = [path]
        for _ in range(INCLUDE_DEPTH + 1):
            following: list[str] = []
            for file in level:
                text = self._text_at(self.head, file)
                if file in unit or text is None:
                    continue
                unit[file] = text
                for name in included_names(text):
                    following += self._resolve_include(file, name)
            level = following
        self._units[path] = TranslationUnit(unit)
        return self._units[path]

    def _lines_mentioning(self, macro: str) -> list[tuple[str, str]]:
        if macro not in self._macro_commits:
            self._macro_commits[macro] = self.repo.commits_changing_lines_matching(
                self.base, self.head, rf"\b{macro}\b")
        return self._macro_commits[macro]

    def _definition_changes(self, path: str, names: Iterable[str]) -> list[tuple[str, str, str]]:
        """(sha, subject, name) for each commit of the range that changed the definition of one
        of ``names`` in ``path`` (the first such name, in the order given)."""
        names = list(names)
        out: list[tuple[str, str, str]] = []
        if path not in self._touching:
            self._touching[path] = self.repo.commits_touching_path(self.base, self.head, path)
        for sha, subject in self._touching[path]:
            after, before = self._code_at(sha, path), self._code_at(f"{sha}^", path)
            if after == before:
                continue
            for name in names:
                if _definition(after or "", name) != _definition(before or "", name):
                    out.append((sha, subject, name))
                    break
        return out

    def suspects(self, function: str, *, profiled: Collection[str] = ()) -> list[Suspect]:
        """Commits in base..head that changed ``function``, a static helper it calls (see the
        module docstring) or a macro those use; oldest first, one Suspect per commit.

        ``profiled``: the profile's frame names; a helper that is one of them (not inlined)
        ran as a function of its own, so it is "called by" rather than "inlined into"
        ``function``."""
        name = source_name(function)
        if not _IDENT.match(name):
            return []  # "[unknown]", C++ signatures etc.: nothing git can look up safely
        own_frames = {source_name(f) for f in profiled if not f.endswith(INLINED_SUFFIX)}
        found: dict[str, Suspect] = {}

        def add(sha: str, subject: str, why: str) -> None:
            found.setdefault(sha, Suspect(sha, subject, function, why))

        for path in self.repo.files_mentioning(self.head, name, C_SOURCES):
            code = self._code_at(self.head, path)
            if code is None or function_body(code, name) is None:
                continue  # a declaration or a call, not the definition
            # name -> (the file that defines it, how the reason names it)
            described = {name: (path, name)}
            for helper, (where, chain) in self.unit(path).static_callees(name).items():
                how = "called by" if helper in own_frames else "inlined into"
                via = f" via {' -> '.join(chain[1:-1])}" if len(chain) > 2 else ""
                described[helper] = (where, f"static helper {helper} ({how} {name}{via})")
            by_file: dict[str, list[str]] = {}
            for defined, (where, _) in described.items():
                by_file.setdefault(where, []).append(defined)
            for where, names in by_file.items():
                for sha, subject, changed in self._definition_changes(where, names):
                    add(sha, subject, f"changed {described[changed][1]} in {where}")
            users: dict[str, str] = {}
            for user, (where, _) in described.items():
                for macro in _MACRO.findall(function_body(self._code_at(self.head, where) or "",
                                                          user) or ""):
                    users.setdefault(macro, user)
            for macro in sorted(users):
                for sha, subject in self._lines_mentioning(macro):
                    add(sha, subject, f"changed {macro}, used by {described[users[macro]][1]}")
        position = {sha: i for i, (sha, _) in enumerate(self.commits())}
        return sorted(found.values(), key=lambda s: position.get(s.sha, -1))


def suspects_for(repo: Repository, base: str, head: str, function: str, *,
                 profiled: Collection[str] = ()) -> list[Suspect]:
    """Commits in base..head that touched function, the static helpers it calls in its file or
    the macros those use, oldest first (see :class:`Attribution`)."""
    return Attribution(repo, base, head).suspects(function, profiled=profiled)
