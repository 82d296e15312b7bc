"""Sampled call stacks: folding ``perf script`` output, the folded format, and profile diffs.

A :class:`Profile` maps whole stacks (frames root -> leaf) to sample counts. It is what every
other evidence module consumes: flamegraphs, hotspot tables and speedscope export. Parsing is
pure (text in, values out); running ``perf`` is the runner's job.

Folded format, one line per unique stack: ``root;caller;leaf 42``. A differential folded file
carries two counts per line, baseline then current: ``root;caller;leaf 40 57``.

Inlined frames. A function the compiler inlined into its caller has no frame of its own: a
frame-pointer stack (perf's or the harness sampler's) charges its time to the function it was
inlined into. Where the binary's DWARF describes the inlining, the frames it hides follow that
function, outermost first, each named ``<function> (inlined)``:
``main;run_crc;minilib_crc32;crc_update (inlined) 812`` is a sample in crc_update's code inside
minilib_crc32. The name stays a single folded frame (flamegraphs draw it above its host, in
italics; speedscope and the hotspot table list it under that name), and a frame whose name
ends with ``INLINED_SUFFIX`` is never a real stack frame. :func:`parse_perf_script` takes them
from perf's own inline output (``perf script --inline`` lines whose dso is ``(inlined)``) or
from a table of (dso, address) -> inlined functions built with ``addr2line -i``
(:func:`parse_addr2line`, :func:`perf_script_addresses`). Self counts
(:meth:`Profile.self_counts`) charge a sample in inlined code to the inlined leaf frame *and*
to the innermost real function, so that function keeps the self time of its whole symbol (as
``perf report`` does) while the leaf says which inlined part it was.
"""

from __future__ import annotations

import itertools
import posixpath
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

Stack = tuple[str, ...]

# Where a profile's samples came from: `perf record` folded by perfd, the harness's own
# sampling fallback (delivered folded), or a folded file read as is.
PROFILE_SOURCES = ("perf", "harness", "folded")

# The name suffix of a frame the compiler inlined into the frame below it (module docstring).
INLINED_SUFFIX = " (inlined)"

# (dso as perf script prints it, address) -> the functions inlined at that address, outermost
# first, without the suffix. Addresses are perf's (dso-relative for shared objects and PIE);
# a caller's entry is keyed by its return address minus one, the call instruction.
InlineTable = Mapping[tuple[str, int], tuple[str, ...]]


def is_inlined(frame: str) -> bool:
    """Whether a frame name is an inlined function (``name (inlined)``), not a real frame."""
    return frame.endswith(INLINED_SUFFIX)


# Characters a frame name cannot hold: the folded format separates frames with ';' and
# stacks with newlines, so a name holding one would change the stack when written back.
_FORBIDDEN_IN_FRAME = (";", "\n", "\r")


def _check_stack(stack: object, where: str) -> Stack:
    # C-level checks first (profiles hold tens of thousands of stacks); explain on failure.
    if type(stack) is not tuple or not stack:
        raise ValueError(f"{where}: a stack must be a non-empty tuple of frame names, got {stack!r}")
    try:
        joined = "".join(stack)
    except TypeError:
        joined = None
    if joined is None or "" in stack:
        bad = next(f for f in stack if not isinstance(f, str) or not f)
        raise ValueError(f"{where}: frame names must be non-empty strings, got {bad!r} in {stack!r}")
    if ";" in joined or "\n" in joined or "\r" in joined:
        bad = next(f for f in stack if any(c in f for c in _FORBIDDEN_IN_FRAME))
        raise ValueError(f"{where}: frame name {bad!r} contains ';' or a line break, "
                         "which the folded format cannot represent")
    return stack


def _check_count(count: object, stack: Stack, where: str) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"{where}: sample count of {';'.join(stack)!r} must be a positive integer, "
                         f"got {count!r}")
    return count


@dataclass(frozen=True, slots=True)
class Profile:
    """Sample counts per stack (frames root -> leaf), immutable.

    ``source`` is one of ``PROFILE_SOURCES``. Counts are positive integers (a stack with no
    samples is simply absent); an empty mapping is a valid, empty profile.
    """

    stacks: Mapping[Stack, int]
    source: str = "folded"
    _total: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.source not in PROFILE_SOURCES:
            raise ValueError(f"Profile.source: must be one of {', '.join(PROFILE_SOURCES)}, "
                             f"got {self.source!r}")
        checked: dict[Stack, int] = {}
        for stack, count in self.stacks.items():
            checked[_check_stack(stack, "Profile.stacks")] = _check_count(count, stack, "Profile.stacks")
        object.__setattr__(self, "stacks", MappingProxyType(checked))
        object.__setattr__(self, "_total", sum(checked.values()))

    def __reduce__(self) -> tuple[type[Profile], tuple[dict[Stack, int], str]]:
        # The read-only mapping proxy cannot be pickled: rebuild from a plain dict.
        return (Profile, (dict(self.stacks), self.source))

    @classmethod
    def from_samples(cls, samples: Iterable[tuple[Stack, int]], *, source: str = "folded") -> Profile:
        """Profile summing the counts of repeated stacks; zero counts are dropped."""
        acc: dict[Stack, int] = {}
        for stack, count in samples:
            if count:
                acc[stack] = acc.get(stack, 0) + count
        return cls(acc, source=source)

    @property
    def total(self) -> int:
        """Number of samples in the profile."""
        return self._total

    @property
    def is_empty(self) -> bool:
        return self._total == 0

    def require_samples(self, what: str) -> None:
        """Raise ValueError("profile has no samples: <what>") when the profile is empty."""
        if self._total == 0:
            raise ValueError(f"profile has no samples: {what}")

    def share(self, count: int) -> float:
        """``count`` as a fraction of all samples (0 for an empty profile)."""
        return count / self._total if self._total else 0.0

    def self_counts(self) -> dict[str, int]:
        """Samples per function as the leaf frame (where the CPU was). A sample whose leaf is
        an inlined frame counts for the innermost real function below it as well (the code
        is part of that function's symbol), not for the inlined frames in between."""
        out: dict[str, int] = {}
        for stack, count in self.stacks.items():
            leaf = stack[-1]
            out[leaf] = out.get(leaf, 0) + count
            if leaf.endswith(INLINED_SUFFIX):
                host = next((f for f in reversed(stack) if not f.endswith(INLINED_SUFFIX)), None)
                if host is not None:
                    out[host] = out.get(host, 0) + count
        return out

    def inclusive_counts(self) -> dict[str, int]:
        """Samples per function anywhere on the stack, counted once per stack (recursion)."""
        out: dict[str, int] = {}
        for stack, count in self.stacks.items():
            for name in set(stack):
                out[name] = out.get(name, 0) + count
        return out

    def functions(self) -> frozenset[str]:
        """Every frame name that occurs in some stack."""
        return frozenset(name for stack in self.stacks for name in stack)

    def sorted_items(self) -> Iterator[tuple[Stack, int]]:
        """(stack, count) in a deterministic order (stacks compared frame by frame)."""
        for stack in sorted(self.stacks):
            yield stack, self.stacks[stack]


# ---- perf script ----------------------------------------------------------------------------

# A sample header in perf script's default output, e.g.
#   "bench_minilib 30173 [001]  3442.326824:    1001001 cpu-clock: "
# The comm may hold spaces, pid may be pid/tid, the cpu column only appears with -C or -a.
_HEADER_RE = re.compile(
    r"^\s*(?P<comm>.*?)\s+-?\d+(?:/-?\d+)?\s+(?:\[\d+\]\s+)?\d+\.\d+:\s*"
    r"(?:\d+\s+)?(?P<event>\S+?):(?:\s+(?P<rest>.*))?$"
)
_OFFSET_RE = re.compile(r"\+0x[0-9a-fA-F]+$")
# The common callchain line in one match: address, symbol (offset dropped), a plain dso.
# (perf's "(inlined)" marker is not a dso: _frame_name's slow path reads it.)
_FRAME_RE = re.compile(r"\s*[0-9a-fA-F]+ +([^\s;\[][^;]*?)(?:\+0x[0-9a-fA-F]+)? \((?!inlined\))[^()]*\)\s*")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_UNKNOWN = "[unknown]"


def _split_dso(text: str) -> tuple[str, str | None]:
    """``sym+0x1 (dso)`` -> (``sym+0x1``, ``dso``); the dso may hold parentheses itself."""
    if not text.endswith(")"):
        return text, None
    start = text.rfind(" (")
    if start >= 0 and "(" not in text[start + 2:-1] and ")" not in text[start + 2:-1]:
        return text[:start].rstrip(), text[start + 2:-1]
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        c = text[i]
        if c == ")":
            depth += 1
        elif c == "(":
            depth -= 1
            if depth == 0:
                # A dso column is separated by a space; "foo(int)" is a symbol, not a dso.
                if i == 0 or text[i - 1] == " ":
                    return text[:i].rstrip(), text[i + 1:-1]
                return text, None
    return text, None


def _frame_name(line: str) -> str | None:
    """One callchain line (``\\t addr sym+off (dso)``) -> perfd's frame name, or None."""
    m = _FRAME_RE.fullmatch(line)
    if m is not None:
        return m.group(1).rstrip()
    body = line.strip()
    if not body:
        return None
    addr, _, rest = body.partition(" ")
    if not _HEX_RE.fullmatch(addr):
        rest = body  # perf script -F without ip: the line starts with the symbol
    symbol, dso = _split_dso(rest.strip())
    symbol = _OFFSET_RE.sub("", symbol)
    if dso == "inlined" and symbol and symbol != _UNKNOWN:
        # perf script --inline: "\t<addr> callee (inlined)" above the frame it was inlined into
        return symbol.replace(";", ":").replace("\r", "") + INLINED_SUFFIX
    if not symbol or symbol == _UNKNOWN:
        if dso and dso != _UNKNOWN:
            base = posixpath.basename(dso.removesuffix(" (deleted)").rstrip("/")) or dso
            symbol = f"{_UNKNOWN} ({base})"
        else:
            symbol = _UNKNOWN
    # ';' would split the frame in the folded format; C/C++ symbols practically never hold one.
    return symbol.replace(";", ":").replace("\r", "")


def _header_comm(header: str) -> str:
    m = _HEADER_RE.match(header)
    comm = m.group("comm") if m else header.split(maxsplit=1)[0]
    return comm.replace(";", ":") or "[unknown comm]"


def _inline_ip(header: str) -> str | None:
    """The ``addr sym (dso)`` that perf script prints on the header line without -g."""
    m = _HEADER_RE.match(header)
    rest = (m.group("rest") or "").strip() if m else ""
    addr, _, symbol = rest.partition(" ")
    if addr and symbol.strip() and _HEX_RE.fullmatch(addr):
        return _frame_name(rest)
    return None


# Samples counted before frame names are worked out: command name (None unless kept) ->
# caller lines (the callchain without its leaf, joined by "\n") -> leaf line -> samples.
# Callers repeat across samples, leaf lines vary with the sampled address; each distinct line
# and each distinct caller chain is converted to names once.
_Raw = dict[str | None, dict[str, dict[str, int]]]
_CONVERTED = "\x00"  # marks a leaf that is already a frame name (perf script without -g)


class _NotStandard(Exception):
    """The text is not in perf script's default layout: use the line-by-line reader."""


def _count(raw: _Raw, comm: str | None, callers: str, leaf: str) -> None:
    by_callers = raw.get(comm)
    if by_callers is None:
        by_callers = raw[comm] = {}
    leaves = by_callers.get(callers)
    if leaves is None:
        leaves = by_callers[callers] = {}
    leaves[leaf] = leaves.get(leaf, 0) + 1


def _scan_blocks(text: str, keep_process: bool) -> _Raw:
    """Fast reader of the default layout: samples separated by one blank line, a header line
    followed by tab-indented callchain lines. Raises _NotStandard on anything else (caller
    lines are checked when they are folded, once per distinct line)."""
    raw: _Raw = {}
    by_callers: dict[str, dict[str, int]] = raw.setdefault(None, {})
    for block in text.split("\n\n"):
        if block[:1] in ("\n", "\t", " ", "#", ""):
            block = block.lstrip("\n")
            if not block:
                continue
            if block[:1] in ("\t", " ", "#"):
                raise _NotStandard
        i = block.find("\n")
        j = block.find("\n", i + 1) if i >= 0 else -1
        if j >= 0:
            leaf, callers = block[i + 1:j], block[j + 1:]
        else:
            leaf, callers = (block[i + 1:] if i >= 0 else ""), ""
        if leaf[:1] != "\t":
            if leaf:
                raise _NotStandard
            single = _inline_ip(block if i < 0 else block[:i])
            if single is None:
                continue  # a sample without a callchain: nothing to attribute it to
            leaf = _CONVERTED + single
        if keep_process:
            _count(raw, _header_comm(block if i < 0 else block[:i]), callers, leaf)
            continue
        leaves = by_callers.get(callers)
        if leaves is None:
            leaves = by_callers[callers] = {}
        leaves[leaf] = leaves.get(leaf, 0) + 1
    return raw


def _scan_lines(text: str, keep_process: bool) -> _Raw:
    """Line-by-line reader for every other layout: space-indented callchains, comment lines,
    several blank lines, samples without callchains (one header line each)."""
    raw: _Raw = {}
    header: str | None = None
    frames: list[str] = []

    def flush() -> None:
        if header is None:
            return
        if frames:
            leaf, callers = frames[0], "\n".join(frames[1:])
        else:
            single = _inline_ip(header)
            if single is None:
                return
            leaf, callers = _CONVERTED + single, ""
        _count(raw, _header_comm(header) if keep_process else None, callers, leaf)

    for line in text.split("\n"):
        if line[:1] == "\t":
            frames.append(line)
        elif line[:1] == " " and header is not None and (frames or not _HEADER_RE.match(line)):
            frames.append(line)  # a callchain indented with spaces
        elif not line or line.isspace():
            flush()
            header, frames = None, []
        elif line[:1] == "#":
            continue  # perf script --header comments
        else:
            flush()
            header, frames = line, []
    flush()
    return raw


def _line_address(line: str) -> tuple[int, str] | None:
    """(address, dso) of a callchain line ``\t addr sym+off (dso)``, or None."""
    addr, _, rest = line.strip().partition(" ")
    if not addr or not _HEX_RE.fullmatch(addr):
        return None
    _, dso = _split_dso(rest.strip())
    return (int(addr, 16), dso) if dso else None


def _fold_raw_inlined(raw: _Raw, *, tab_only: bool, inlined: InlineTable) -> dict[Stack, int]:
    """_fold_raw with the frames of ``inlined`` after the frames they were inlined into."""
    as_caller: dict[str, tuple[str, ...]] = {}
    as_leaf: dict[str, tuple[str, ...]] = {}

    def frames_of(line: str, leaf: bool) -> tuple[str, ...]:
        known = as_leaf if leaf else as_caller
        got = known.get(line)
        if got is None:
            if tab_only and line and line[:1] != "\t":
                raise _NotStandard
            name = _frame_name(line)
            got = ()
            if name is not None:
                where = _line_address(line)
                extra = () if where is None else inlined.get(
                    (where[1], where[0] if leaf else where[0] - 1), ())
                got = (name, *(f + INLINED_SUFFIX for f in extra))
            known[line] = got
        return got

    stacks: dict[Stack, int] = {}
    for comm, by_callers in raw.items():
        prefix: Stack = () if comm is None else (comm,)
        for callers, leaves in by_callers.items():
            lines = callers.split("\n")
            lines.reverse()
            chain = prefix + tuple(itertools.chain.from_iterable(frames_of(line, False) for line in lines))
            for leaf, count in leaves.items():
                tail = (leaf[1:],) if leaf[:1] == _CONVERTED else frames_of(leaf, True)
                stack = chain + tail
                if len(stack) > len(prefix):
                    stacks[stack] = stacks.get(stack, 0) + count
    return stacks


def _fold_raw(raw: _Raw, *, tab_only: bool, inlined: InlineTable | None = None) -> dict[Stack, int]:
    """Stacks of frame names, root -> leaf. With ``tab_only`` a frame line that does not start
    with a tab raises _NotStandard (the fast reader's layout check)."""
    if inlined:
        return _fold_raw_inlined(raw, tab_only=tab_only, inlined=inlined)
    names: dict[str, str | None] = {}

    def name_of(line: str) -> str | None:
        if tab_only and line and line[:1] != "\t":
            raise _NotStandard
        name = names[line] = _frame_name(line)
        return name

    stacks: dict[Stack, int] = {}
    for comm, by_callers in raw.items():
        prefix: Stack = () if comm is None else (comm,)
        for callers, leaves in by_callers.items():
            lines = callers.split("\n")
            lines.reverse()
            for line in lines:
                if line not in names:
                    name_of(line)
            # C-level map/filter: runs once per distinct caller chain, tens of thousands of times.
            chain = prefix + tuple(filter(None, map(names.__getitem__, lines)))
            for leaf, count in leaves.items():
                if leaf[:1] == _CONVERTED:
                    leaf_name: str | None = leaf[1:]
                else:
                    leaf_name = names[leaf] if leaf in names else name_of(leaf)
                stack = chain + (leaf_name,) if leaf_name is not None else chain
                if len(stack) > len(prefix):
                    stacks[stack] = stacks.get(stack, 0) + count
    return stacks


def parse_perf_script(text: str, *, keep_process: bool = False,
                      inlined: InlineTable | None = None) -> Profile:
    """Fold ``perf script`` default output (header line, indented frames leaf first, blank line)
    into a Profile of root -> leaf stacks, one sample per header.

    Offsets (``+0x1f``) are dropped, ``[unknown]`` symbols become ``[unknown] (dso basename)``
    (plain ``[unknown]`` when the dso is unknown too), samples without frames are skipped and,
    with ``keep_process``, the command name is the root frame. Counts are samples, not
    periods (perfd records with a fixed-rate clock). Inlined frames come from perf's own
    ``(inlined)`` lines or from ``inlined`` (see the module docstring).
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    try:
        stacks = _fold_raw(_scan_blocks(text, keep_process), tab_only=True, inlined=inlined)
    except _NotStandard:
        stacks = _fold_raw(_scan_lines(text, keep_process), tab_only=False, inlined=inlined)
    return Profile(stacks, source="perf")


def perf_script_addresses(text: str, dsos: Collection[str]) -> set[int]:
    """The addresses of frames in ``dsos`` whose inlined functions an :data:`InlineTable` needs:
    each sample's own address, and each caller's return address minus one."""
    out: set[int] = set()
    leaf = False
    for line in text.split("\n"):
        frame = line[:1] == "\t" or (line[:1] == " " and bool(line.strip())
                                     and not _HEADER_RE.match(line))
        if not frame:
            leaf = True  # a header, a comment or the blank line between samples
            continue
        where = _line_address(line)
        if where is not None and where[1] in dsos:
            out.add(where[0] if leaf else where[0] - 1)
        leaf = False
    return out


_ADDR2LINE_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def parse_addr2line(text: str) -> dict[int, tuple[str, ...]]:
    """Read ``addr2line -a -f -i`` output (an address line, then function and file:line lines
    from the innermost inlined function out to the real one) into address -> the inlined
    functions, outermost first, without the real function; addresses with no inlining (or no
    debug information, ``??``) are left out."""
    out: dict[int, tuple[str, ...]] = {}
    address: int | None = None
    names: list[str] = []

    def flush() -> None:
        chain = names[::2]  # function, file:line, function, file:line, ...
        if address is not None and len(chain) > 1 and "??" not in chain:
            out[address] = tuple(reversed(chain[:-1]))

    for line in text.splitlines():
        if _ADDR2LINE_ADDRESS.fullmatch(line.strip()):
            flush()
            address, names = int(line.strip(), 16), []
        elif address is not None:
            names.append(line.strip().replace(";", ":"))
    flush()
    return out


# ---- folded stacks --------------------------------------------------------------------------


def _folded_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.rstrip()
        if line:
            yield number, line


def _parse_stack(stack_text: str, number: int, line: str) -> Stack:
    frames = tuple(stack_text.split(";"))
    if not stack_text or any(not f for f in frames):
        raise ValueError(f"folded line {number}: empty frame name in {line!r}")
    return frames


def _parse_count(text: str, number: int, line: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"folded line {number}: sample count must be a non-negative integer, "
                         f"got {text!r} in {line!r} (expected 'frame;frame;... count')")
    return int(text)


def parse_folded(text: str, *, source: str = "folded") -> Profile:
    """Read folded stacks (``a;b;c 12`` per line) into a Profile; repeated stacks add up,
    zero counts are dropped, empty text gives an empty Profile. Raises ValueError naming
    the line number and content of a malformed line."""
    acc: dict[Stack, int] = {}
    for number, line in _folded_lines(text):
        stack_text, sep, count_text = line.rpartition(" ")
        if not sep:
            raise ValueError(f"folded line {number}: expected 'frame;frame;... count', got {line!r}")
        count = _parse_count(count_text, number, line)
        stack = _parse_stack(stack_text.rstrip(), number, line)
        if count:
            acc[stack] = acc.get(stack, 0) + count
    return Profile(acc, source=source)


def to_folded(profile: Profile) -> str:
    """Folded text of a profile: one ``a;b;c count`` line per stack, sorted, newline-terminated."""
    return "".join(f"{';'.join(stack)} {count}\n" for stack, count in profile.sorted_items())


# ---- differential profiles ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One stack of a differential profile; shares are fractions 0-1 of each profile's total."""

    stack: Stack
    baseline_count: int
    current_count: int
    baseline_share: float
    current_share: float

    @property
    def share_delta(self) -> float:
        """current_share - baseline_share (positive: the stack takes more of the time now)."""
        return self.current_share - self.baseline_share


@dataclass(frozen=True, slots=True)
class DiffProfile:
    """Baseline and current profiles side by side: per stack (baseline_count, current_count).

    Both profiles must have samples: shares (count / total) are what make profiles of
    different lengths comparable.
    """

    baseline: Profile
    current: Profile
    stacks: Mapping[Stack, tuple[int, int]] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        self.baseline.require_samples("the baseline of a profile diff")
        self.current.require_samples("the current side of a profile diff")
        # Baseline stacks in their order, then current-only ones; sorted views are rows()/folded.
        cur = self.current.stacks
        pairs = {stack: (count, cur.get(stack, 0)) for stack, count in self.baseline.stacks.items()}
        for stack, count in cur.items():
            if stack not in pairs:
                pairs[stack] = (0, count)
        object.__setattr__(self, "stacks", MappingProxyType(pairs))

    def __reduce__(self) -> tuple[type[DiffProfile], tuple[Profile, Profile]]:
        return (DiffProfile, (self.baseline, self.current))

    @property
    def baseline_total(self) -> int:
        return self.baseline.total

    @property
    def current_total(self) -> int:
        return self.current.total

    def baseline_share(self, stack: Stack) -> float:
        return self.stacks.get(stack, (0, 0))[0] / self.baseline.total

    def current_share(self, stack: Stack) -> float:
        return self.stacks.get(stack, (0, 0))[1] / self.current.total

    def share_delta(self, stack: Stack) -> float:
        """Change of the stack's normalised share, current - baseline."""
        return self.current_share(stack) - self.baseline_share(stack)

    def rows(self) -> list[DiffRow]:
        """Every stack of either profile, sorted by stack."""
        bt, ct = self.baseline.total, self.current.total
        return [DiffRow(stack, b, c, b / bt, c / ct) for stack, (b, c) in sorted(self.stacks.items())]


def diff_profiles(baseline: Profile, current: Profile) -> DiffProfile:
    """Pair two profiles stack by stack. Raises ValueError when either has no samples."""
    return DiffProfile(baseline, current)


def to_diff_folded(diff: DiffProfile) -> str:
    """Differential folded text: ``a;b;c baseline_count current_count`` per stack, sorted."""
    return "".join(f"{';'.join(row.stack)} {row.baseline_count} {row.current_count}\n" for row in diff.rows())


def parse_diff_folded(text: str) -> DiffProfile:
    """Read differential folded text (two counts per line, baseline then current).
    Raises ValueError for a malformed line or when a side has no samples."""
    base: dict[Stack, int] = {}
    cur: dict[Stack, int] = {}
    for number, line in _folded_lines(text):
        parts = line.rsplit(" ", 2)
        if len(parts) != 3:
            raise ValueError(f"folded line {number}: expected 'frame;frame;... baseline current', "
                             f"got {line!r}")
        stack = _parse_stack(parts[0].rstrip(), number, line)
        b, c = _parse_count(parts[1], number, line), _parse_count(parts[2], number, line)
        if b:
            base[stack] = base.get(stack, 0) + b
        if c:
            cur[stack] = cur.get(stack, 0) + c
    return DiffProfile(Profile(base), Profile(cur))
