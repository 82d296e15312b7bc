"""perfd's flamegraph renderer: a self-contained, interactive SVG from a Profile or a DiffProfile.

Classic layout: the root ("all") at the bottom, callees stacked above their callers, siblings
in name order, a frame's width proportional to its samples. Frames narrower than
``min_width_frac`` of the width are not drawn (their samples stay inside the parent's width)
so a 100k-sample profile stays a small file; the subtitle says how many samples that hides.

Differential flamegraphs are drawn over the *current* profile: width = current samples,
colour = change of the frame's normalised share (current share - baseline share), red for
growth and blue for shrinkage, saturating at ``saturate_at``. Frames that exist only in the
baseline have no width, so they are not drawn: their functions are listed in a note under the
graph, with those that shrank from drawable width in the baseline to below it now.

Inlined frames (``name (inlined)``, see :mod:`perfd.evidence.profile`) are drawn above the
function they were inlined into like any callee, with an italic label and, in plain graphs,
a colour from a cool (aqua) range instead of the warm one, so code that has no stack frame of
its own is told apart at a glance; a differential graph colours them by their change like
every frame, and its hover text names them with the suffix.

Output is deterministic (same input -> same bytes) and needs nothing outside the file: an
inline script adds hover details, click-to-zoom, reset and search (button, Ctrl-F or "/").
Every frame is a ``<g class="f">`` with ``data-name``, ``data-samples``, ``data-share`` and,
in a diff, ``data-before``, ``data-before-samples`` and ``data-delta``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping

from perfd.evidence.profile import INLINED_SUFFIX, DiffProfile, Profile, Stack

# Versions of the SVG perfd writes (the data-* contract tests and tools rely on). History:
#   1 - first format: g.f frames with data-name/samples/share (+ before/before-samples/delta).
FLAMEGRAPH_FORMAT_VERSION = 1

IMAGE_WIDTH = 1200
PAD_X = 10
PLOT_WIDTH = IMAGE_WIDTH - 2 * PAD_X
FRAME_HEIGHT = 16
FRAMES_TOP = 56
CHAR_WIDTH = 7.2  # advance of a 12px monospace glyph: how many characters fit in a frame
ROOT_NAME = "all"

NEUTRAL_RGB = (221, 221, 221)
GROWTH_RGB = (214, 39, 40)
SHRINK_RGB = (33, 96, 196)
ROOT_RGB = (200, 200, 200)
UNKNOWN_RGB = (190, 190, 190)

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_escape(text: str) -> str:
    """Text safe inside XML content and double-quoted attributes (invalid XML chars -> U+FFFD)."""
    text = _XML_INVALID.sub("\ufffd", text)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def fit_label(name: str, width_px: float) -> str:
    """The part of ``name`` that fits a frame ``width_px`` wide ('' when under 3 characters)."""
    chars = int((width_px - 6) / CHAR_WIDTH)
    if chars < 3:
        return ""
    return name if len(name) <= chars else name[:chars - 2] + ".."


def warm_colour(name: str) -> tuple[int, int, int]:
    """A stable warm colour per function name (same name -> same colour in every graph);
    inlined frames get a cool (aqua) one."""
    if name == ROOT_NAME:
        return ROOT_RGB
    if name.startswith("[unknown]"):
        return UNKNOWN_RGB
    h = zlib.crc32(name.encode("utf-8", "surrogatepass"))
    a, b = (h & 0xFFFF) / 0xFFFF, (h >> 16) / 0xFFFF
    if name.endswith(INLINED_SUFFIX):
        return (int(60 + 50 * a), int(170 + 50 * b), int(190 + 50 * a))
    return (int(200 + 55 * a), int(70 + 150 * b), int(30 + 45 * a))


def diff_colour(delta: float, saturate_at: float) -> tuple[int, int, int]:
    """Neutral grey for no change, towards red for growth / blue for shrinkage of the share."""
    t = min(abs(delta) / saturate_at, 1.0)
    target = GROWTH_RGB if delta > 0 else SHRINK_RGB
    r, g, b = (round(n + (c - n) * t) for n, c in zip(NEUTRAL_RGB, target, strict=True))
    return (r, g, b)


# ---- call tree ------------------------------------------------------------------------------


class _Node:
    __slots__ = ("name", "count", "base", "children")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0  # current samples through this frame
        self.base = 0  # baseline samples through this frame (diff only)
        self.children: dict[str, _Node] = {}


def _add_stacks(root: _Node, stacks: Mapping[Stack, int], attr: str) -> None:
    """Add each stack's count to `attr` ("count" or "base") of every node along its path."""
    for stack, count in stacks.items():
        node = root
        setattr(node, attr, getattr(node, attr) + count)
        for frame in stack:
            child = node.children.get(frame)
            if child is None:
                child = node.children[frame] = _Node(frame)
            setattr(child, attr, getattr(child, attr) + count)
            node = child


def _build_tree(current: Mapping[Stack, int], baseline: Mapping[Stack, int] | None) -> _Node:
    root = _Node(ROOT_NAME)
    _add_stacks(root, current, "count")
    if baseline is not None:
        _add_stacks(root, baseline, "base")
    return root


class _Layout:
    """Frames to draw in pre-order (a frame's descendants follow it contiguously).

    A frame with fewer than ``min_count`` current samples is not drawn, nor anything above it;
    its samples stay inside the parent's width. In a diff, frames that are not drawn although
    the baseline had them at drawable width (``min_base_count``) or at all (no current
    samples) are collected per function for the note under the graph.
    """

    def __init__(self, root: _Node, min_count: float, min_base_count: float | None) -> None:
        self.frames: list[tuple[_Node, int, int]] = []  # (node, depth, x offset in samples)
        self.elided_samples = 0
        self.hidden: dict[str, list[int]] = {}  # function -> [baseline samples, current samples]
        self.max_depth = 0
        todo: list[tuple[_Node, int, int]] = [(root, 0, 0)]
        while todo:
            node, depth, x = todo.pop()
            self.frames.append((node, depth, x))
            self.max_depth = max(self.max_depth, depth)
            kids = []
            offset = x
            for name in sorted(node.children):
                child = node.children[name]
                if child.count >= min_count and child.count > 0:
                    kids.append((child, depth + 1, offset))
                    offset += child.count
                    continue
                self.elided_samples += child.count
                offset += child.count
                if min_base_count is not None and (child.count == 0 or child.base >= min_base_count):
                    pair = self.hidden.setdefault(name, [0, 0])
                    pair[0] += child.base
                    pair[1] += child.count
            todo.extend(reversed(kids))


# ---- SVG ------------------------------------------------------------------------------------

_STYLE = """
text { font-family: monospace; font-size: 12px; fill: #111; }
#title { font-size: 17px; text-anchor: middle; }
#subtitle, .note { fill: #555; }
#subtitle { text-anchor: middle; }
#matched, #search { text-anchor: end; }
.ctl { fill: #1a56b0; cursor: pointer; text-decoration: underline; }
.f { cursor: pointer; }
.f rect { stroke: #fdfdfd; stroke-width: 0.5; }
.f text { pointer-events: none; }
.f:hover rect { stroke: #000; stroke-width: 0.8; }
.f text.w { fill: #fff; }
.hide { display: none; }
.parent { opacity: 0.55; }
"""

# Plain ES5 so the file opens in any browser; reads everything from the SVG's own attributes.
_SCRIPT = r"""
(function () {
  "use strict";
  var svg = document.documentElement;
  var NS = "http://www.w3.org/2000/svg";
  var plotX = +svg.getAttribute("data-plot-x"), plotW = +svg.getAttribute("data-plot-width");
  var total = +svg.getAttribute("data-total-samples");
  var charW = +svg.getAttribute("data-char-width");
  var isDiff = svg.getAttribute("data-kind") === "diff";
  var details = document.getElementById("details"), matched = document.getElementById("matched");
  var unzoomBtn = document.getElementById("unzoom"), searchBtn = document.getElementById("search");
  var helpText = details.textContent;
  var MATCH_FILL = "rgb(230,0,230)";
  var nodes = document.querySelectorAll("g.f"), frames = [], i;
  for (i = 0; i < nodes.length; i++) {
    var g = nodes[i], r = g.getElementsByTagName("rect")[0];
    g.setAttribute("data-index", String(i));
    frames.push({g: g, rect: r, text: g.getElementsByTagName("text")[0] || null,
                 x: +r.getAttribute("x"), w: +r.getAttribute("width"), y: +r.getAttribute("y"),
                 fill: r.getAttribute("fill"), name: g.getAttribute("data-name")});
  }
  var zoomed = -1, searchTerm = "";

  function pct(v) { return (100 * v).toFixed(2) + "%"; }
  function fit(name, w) {
    var n = Math.floor((w - 6) / charW);
    if (n < 3) return "";
    return name.length <= n ? name : name.slice(0, n - 2) + "..";
  }
  function place(f, x, w, parent) {
    f.rect.setAttribute("x", x.toFixed(2));
    f.rect.setAttribute("width", w.toFixed(2));
    f.g.setAttribute("class", parent ? "f parent" : "f");
    var label = fit(f.name, w);
    if (!f.text && label) {
      f.text = document.createElementNS(NS, "text");
      f.text.setAttribute("y", String(f.y + 11.5));
      f.g.appendChild(f.text);
    }
    if (f.text) {
      f.text.setAttribute("x", (x + 3).toFixed(2));
      f.text.textContent = label;
    }
  }
  function describe(g) {
    var s = g.getAttribute("data-name") + " \u2014 " + (+g.getAttribute("data-samples")).toLocaleString() +
      " samples, " + pct(+g.getAttribute("data-share"));
    if (isDiff) {
      var d = +g.getAttribute("data-delta");
      s += " (before " + pct(+g.getAttribute("data-before")) + " \u2192 now " +
        pct(+g.getAttribute("data-share")) + ", " + (d >= 0 ? "+" : "\u2212") +
        (100 * Math.abs(d)).toFixed(2) + " pts)";
    }
    return s;
  }
  function zoom(k) {
    var f = frames[k], scale = plotW / f.w, show = [], j, y;
    for (j = 0; j < frames.length; j++) show.push(0);
    show[k] = 1;
    for (j = k + 1; j < frames.length && frames[j].y < f.y; j++) show[j] = 1;
    for (j = k - 1, y = f.y; j >= 0; j--) {
      if (frames[j].y > y) { show[j] = 2; y = frames[j].y; }
    }
    for (j = 0; j < frames.length; j++) {
      var h = frames[j];
      if (!show[j]) { h.g.setAttribute("class", "f hide"); continue; }
      if (show[j] === 2) place(h, plotX, plotW, true);
      else place(h, plotX + (h.x - f.x) * scale, h.w * scale, false);
    }
    zoomed = k;
    unzoomBtn.setAttribute("class", k > 0 ? "ctl" : "ctl hide");
  }
  function unzoom() {
    for (var j = 0; j < frames.length; j++) place(frames[j], frames[j].x, frames[j].w, false);
    zoomed = -1;
    unzoomBtn.setAttribute("class", "ctl hide");
  }
  function clearSearch() {
    for (var j = 0; j < frames.length; j++) frames[j].rect.setAttribute("fill", frames[j].fill);
    searchTerm = "";
    matched.textContent = "";
    searchBtn.textContent = "Search";
  }
  function search(term) {
    if (!term) { clearSearch(); return; }
    var re = null, sum = 0, cover = null, j;
    try { re = new RegExp(term); } catch (e) { re = null; }
    for (j = 0; j < frames.length; j++) {
      var f = frames[j];
      if (cover !== null && f.y >= cover) cover = null;
      var hit = j > 0 && (re ? re.test(f.name) : f.name.indexOf(term) >= 0);
      f.rect.setAttribute("fill", hit ? MATCH_FILL : f.fill);
      if (hit && cover === null) { sum += +f.g.getAttribute("data-samples"); cover = f.y; }
    }
    searchTerm = term;
    matched.textContent = "Matched: " + pct(total ? sum / total : 0) + " of samples for /" + term + "/";
    searchBtn.textContent = "Clear search";
  }
  function askSearch() {
    var term = window.prompt("Highlight functions matching (regular expression):", searchTerm);
    if (term !== null) search(term);
  }
  function frameOf(el) {
    while (el && el !== svg) {
      var cls = el.getAttribute ? el.getAttribute("class") : null;
      if (cls && /(^| )f( |$)/.test(cls)) return el;
      el = el.parentNode;
    }
    return null;
  }
  var layer = document.getElementById("frames");
  layer.addEventListener("mouseover", function (e) {
    var g = frameOf(e.target);
    if (g) details.textContent = describe(g);
  });
  layer.addEventListener("mouseout", function () { details.textContent = helpText; });
  layer.addEventListener("click", function (e) {
    var g = frameOf(e.target);
    if (g) zoom(+g.getAttribute("data-index"));
  });
  unzoomBtn.addEventListener("click", unzoom);
  searchBtn.addEventListener("click", function () { if (searchTerm) clearSearch(); else askSearch(); });
  window.addEventListener("keydown", function (e) {
    if ((e.key === "f" && (e.ctrlKey || e.metaKey)) || e.key === "/") { e.preventDefault(); askSearch(); }
    else if (e.key === "Escape") { clearSearch(); if (zoomed >= 0) unzoom(); }
  });
})();
"""

HELP_TEXT = "Hover a frame for details \u00b7 click to zoom \u00b7 Ctrl-F, / or Search to highlight functions"


def _rgb(c: tuple[int, int, int]) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


def _num(v: float) -> str:
    """Fixed 6-decimal share without a negative zero."""
    return f"{round(v, 6) + 0.0:.6f}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _hidden_note(hidden: dict[str, list[int]], baseline_total: int, current_total: int,
                 min_width_frac: float) -> str:
    """One line naming the functions of baseline frames not drawn now, largest first, as many
    as fit the width."""
    ranked = sorted(hidden.items(), key=lambda kv: (-kv[1][0], kv[0]))
    head = (f"Not drawn (only in the baseline, or now narrower than {min_width_frac * 100:g}%), "
            "share before \u2192 now: ")
    budget = int(PLOT_WIDTH / CHAR_WIDTH) - len(head) - len(" and 9999 more")
    parts: list[str] = []
    used = 0
    for name, (before, now) in ranked:
        shown = name if len(name) <= 60 else name[:58] + ".."
        after = "gone" if now == 0 else f"{now / current_total * 100:.2f}%"
        part = f"{shown} {before / baseline_total * 100:.2f}% \u2192 {after}"
        if parts and used + len(part) + 2 > budget:
            break
        parts.append(part)
        used += len(part) + 2
    more = f" and {len(ranked) - len(parts)} more" if len(ranked) > len(parts) else ""
    return head + ", ".join(parts) + more


def _render(root: _Node, *, total: int, baseline_total: int | None, title: str, subtitle: str | None,
            min_width_frac: float, saturate_at: float, time_ratio: float | None = None) -> str:
    if not 0.0 <= min_width_frac < 1.0:
        raise ValueError(f"min_width_frac must be within [0, 1), got {min_width_frac!r}")
    if not saturate_at > 0:
        raise ValueError(f"saturate_at must be > 0, got {saturate_at!r}")
    is_diff = baseline_total is not None
    min_base = min_width_frac * baseline_total if baseline_total is not None else None
    layout = _Layout(root, min_width_frac * total, min_base)
    rows = layout.max_depth + 1
    frames_bottom = FRAMES_TOP + rows * FRAME_HEIGHT
    details_y = frames_bottom + 20
    notes: list[str] = []
    if is_diff:
        if time_ratio is None:
            notes.append("Width: current samples. Colour: change of the frame's share of samples "
                         "since the baseline \u2014 red grew, blue shrank, full colour at "
                         f"\u00b1{saturate_at * 100:g} points.")
        else:
            notes.append("Width: current samples. Colour: change of the frame's time per operation "
                         "since the baseline, in % of the baseline's time (current/baseline latency "
                         f"{time_ratio:.3f}) \u2014 red grew, blue shrank, full colour at "
                         f"\u00b1{saturate_at * 100:g}%.")
        if layout.hidden and baseline_total:
            notes.append(_hidden_note(layout.hidden, baseline_total, total, min_width_frac))
    height = details_y + 8 + 18 * len(notes) + 8

    sub_parts = [subtitle] if subtitle else []
    if is_diff:
        assert baseline_total is not None
        sub_parts.append(f"baseline {_plural(baseline_total, 'sample')}, current {_plural(total, 'sample')}")
    else:
        sub_parts.append(_plural(total, "sample"))
    if layout.elided_samples:
        sub_parts.append(f"{_plural(layout.elided_samples, 'sample')} "
                         f"({layout.elided_samples / total * 100:.2f}%) in frames narrower than "
                         f"{min_width_frac * 100:g}% not drawn")
    full_subtitle = " | ".join(sub_parts)

    kind = "diff" if is_diff else "plain"
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{IMAGE_WIDTH}" height="{height}" '
        f'viewBox="0 0 {IMAGE_WIDTH} {height}" data-perfd-flamegraph="{FLAMEGRAPH_FORMAT_VERSION}" '
        f'data-kind="{kind}" data-total-samples="{total}"'
        + (f' data-baseline-samples="{baseline_total}"' if is_diff else "")
        + f' data-elided-samples="{layout.elided_samples}" data-plot-x="{PAD_X}" '
        f'data-plot-width="{PLOT_WIDTH}" data-char-width="{CHAR_WIDTH}">\n',
        f"<title>{xml_escape(title)}</title>\n",
        f"<style>{_STYLE}</style>\n",
        f'<rect x="0" y="0" width="{IMAGE_WIDTH}" height="{height}" fill="#fdfdfd"/>\n',
        f'<text id="title" x="{IMAGE_WIDTH / 2:g}" y="24">{xml_escape(title)}</text>\n',
        f'<text id="subtitle" x="{IMAGE_WIDTH / 2:g}" y="44">{xml_escape(full_subtitle)}</text>\n',
        f'<text id="unzoom" class="ctl hide" x="{PAD_X}" y="24">Reset zoom</text>\n',
        f'<text id="search" class="ctl" x="{IMAGE_WIDTH - PAD_X}" y="24">Search</text>\n',
        '<g id="frames">\n',
    ]
    scale = PLOT_WIDTH / total
    for node, depth, x in layout.frames:
        share = node.count / total
        x_px = PAD_X + x * scale
        w_px = node.count * scale
        y = FRAMES_TOP + (rows - 1 - depth) * FRAME_HEIGHT
        attrs = f'data-name="{xml_escape(node.name)}" data-samples="{node.count}" data-share="{_num(share)}"'
        white_text = False
        if is_diff:
            assert baseline_total is not None
            before = node.base / baseline_total
            delta = share * (time_ratio or 1.0) - before
            colour = diff_colour(delta, saturate_at)
            white_text = abs(delta) / saturate_at > 0.6
            attrs += (f' data-before="{_num(before)}" data-before-samples="{node.base}"'
                      f' data-delta="{"+" if round(delta, 6) >= 0 else ""}{_num(delta)}"')
        else:
            colour = warm_colour(node.name)
        label = fit_label(node.name, w_px)
        text = ""
        if label:
            cls = ' class="w"' if white_text else ""
            text = f'<text{cls} x="{x_px + 3:.2f}" y="{y + 11.5:g}">{xml_escape(label)}</text>'
        if node.name.endswith(INLINED_SUFFIX):
            attrs += ' font-style="italic"'  # inherited by labels the script adds on zoom
        out.append(f'<g class="f" {attrs}><rect x="{x_px:.2f}" y="{y}" width="{w_px:.2f}" '
                   f'height="{FRAME_HEIGHT - 1}" fill="{_rgb(colour)}"/>{text}</g>\n')
    out.append("</g>\n")
    out.append(f'<text id="details" x="{PAD_X}" y="{details_y}">{xml_escape(HELP_TEXT)}</text>\n')
    out.append(f'<text id="matched" x="{IMAGE_WIDTH - PAD_X}" y="{details_y}"></text>\n')
    for k, note in enumerate(notes):
        note_y = details_y + 18 * (k + 1)
        out.append(f'<text class="note" x="{PAD_X}" y="{note_y}">{xml_escape(note)}</text>\n')
    out.append(f"<script><![CDATA[{_SCRIPT}]]></script>\n")
    out.append("</svg>\n")
    return "".join(out)


def render_flamegraph(profile: Profile, *, title: str, subtitle: str | None = None,
                      min_width_frac: float = 0.001) -> str:
    """Interactive flamegraph SVG of ``profile``. Raises ValueError when it has no samples."""
    profile.require_samples(f"cannot render flamegraph {title!r}")
    root = _build_tree(profile.stacks, None)
    return _render(root, total=profile.total, baseline_total=None, title=title, subtitle=subtitle,
                   min_width_frac=min_width_frac, saturate_at=1.0)


def render_diff_flamegraph(diff: DiffProfile, *, title: str, subtitle: str | None = None,
                           min_width_frac: float = 0.001, saturate_at: float = 0.05,
                           time_ratio: float | None = None) -> str:
    """Differential flamegraph SVG: width = current samples, colour = share change since the
    baseline (red grew, blue shrank; full colour at ``saturate_at``, a fraction 0-1).

    With ``time_ratio`` (current / baseline latency per operation) the colour is the change of
    the frame's *time*: share x ratio - baseline share. A benchmark that spends all its samples
    in one function before and after still shows that function red when it got slower.
    Raises ValueError for a bad ``min_width_frac``, ``saturate_at`` or ``time_ratio``."""
    if time_ratio is not None and not time_ratio > 0:
        raise ValueError(f"time_ratio must be > 0, got {time_ratio!r}")
    root = _build_tree(diff.current.stacks, diff.baseline.stacks)
    return _render(root, total=diff.current_total, baseline_total=diff.baseline_total, title=title,
                   subtitle=subtitle, min_width_frac=min_width_frac, saturate_at=saturate_at,
                   time_ratio=time_ratio)
