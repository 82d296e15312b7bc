"""perfd's flamegraph SVG: structure (frames, widths, colours, escaping), differential colouring,
elision, determinism, golden files, and the inline script run under node against a small DOM.

Regenerate the golden SVGs after an intended change with:
    PERFD_UPDATE_GOLDEN=1 pytest tests/unit/test_evidence_flamegraph.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from perfd.evidence.flamegraph import (
    FLAMEGRAPH_FORMAT_VERSION,
    FRAME_HEIGHT,
    NEUTRAL_RGB,
    PAD_X,
    PLOT_WIDTH,
    render_diff_flamegraph,
    render_flamegraph,
    warm_colour,
)
from perfd.evidence.profile import Profile, diff_profiles, parse_perf_script

TESTS = Path(__file__).parents[1]
GOLDEN = TESTS / "golden"
FIXTURES = TESTS / "fixtures" / "profiles"
NS = "{http://www.w3.org/2000/svg}"

WEIRD = 'log<T>&"x"'  # C++-ish name with every XML-special character
TINY = Profile({
    ("main", "handle", "parse"): 60,
    ("main", "handle", "serialize"): 30,
    ("main", WEIRD): 10,
})


def frames(svg: str) -> list[dict]:
    """Every drawn frame in document order: data-* attributes plus rect geometry and label."""
    root = ET.fromstring(svg.encode())
    out = []
    for g in root.iter(f"{NS}g"):
        if g.get("class") != "f":
            continue
        rect = g.find(f"{NS}rect")
        text = g.find(f"{NS}text")
        out.append({
            **{k.removeprefix("data-"): v for k, v in g.attrib.items() if k.startswith("data-")},
            "x": float(rect.get("x")), "y": float(rect.get("y")), "width": float(rect.get("width")),
            "fill": rect.get("fill"), "label": text.text if text is not None else None,
        })
    return out


def by_name(svg: str) -> dict[str, dict]:
    return {f["name"]: f for f in frames(svg)}


def rgb(fill: str) -> tuple[int, int, int]:
    r, g, b = map(int, re.fullmatch(r"rgb\((\d+),(\d+),(\d+)\)", fill).groups())
    return r, g, b


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PERFD_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; PERFD_UPDATE_GOLDEN=1 regenerates it"


# ---- plain flamegraph -----------------------------------------------------------------------


def test_structure_order_widths_and_positions():
    svg = render_flamegraph(TINY, title="tiny")
    root = ET.fromstring(svg.encode())
    assert root.get("data-perfd-flamegraph") == str(FLAMEGRAPH_FORMAT_VERSION)
    assert root.get("data-kind") == "plain" and root.get("data-total-samples") == "100"
    fs = frames(svg)
    # pre-order, siblings by name: a frame's callees follow it
    assert [f["name"] for f in fs] == ["all", "main", "handle", "parse", "serialize", WEIRD]
    f = {x["name"]: x for x in fs}
    for name, samples in [("all", 100), ("main", 100), ("handle", 90), ("parse", 60), ("serialize", 30),
                          (WEIRD, 10)]:
        assert int(f[name]["samples"]) == samples
        assert float(f[name]["share"]) == pytest.approx(samples / 100)
        assert f[name]["width"] == pytest.approx(samples / 100 * PLOT_WIDTH, abs=0.01)
    # root at the bottom, one row up per call level
    assert f["all"]["y"] > f["main"]["y"] > f["handle"]["y"] > f["parse"]["y"]
    assert f["main"]["y"] - f["handle"]["y"] == FRAME_HEIGHT
    assert f["parse"]["y"] == f["serialize"]["y"]
    # children start at the parent's left edge and are laid side by side
    assert f["all"]["x"] == f["main"]["x"] == f["handle"]["x"] == f["parse"]["x"] == PAD_X
    assert f["serialize"]["x"] == pytest.approx(f["parse"]["x"] + f["parse"]["width"], abs=0.01)
    assert f[WEIRD]["x"] == pytest.approx(f["handle"]["x"] + f["handle"]["width"], abs=0.01)


def test_colours_warm_and_stable_per_function():
    f = by_name(render_flamegraph(TINY, title="tiny"))
    for name in ("main", "handle", "parse"):
        r, g, b = rgb(f[name]["fill"])
        assert r >= 200 and b <= 80  # warm: red-orange-yellow
        assert rgb(f[name]["fill"]) == warm_colour(name)
    other = by_name(render_flamegraph(Profile({("x", "parse"): 3}), title="other"))
    assert other["parse"]["fill"] == f["parse"]["fill"]


def test_escaping_of_names_and_titles():
    title = 'Vec<&str> "quoted" & more'
    svg = render_flamegraph(TINY, title=title, subtitle="<sub>")
    assert 'data-name="log&lt;T&gt;&amp;&quot;x&quot;"' in svg
    assert "<sub>" not in svg and WEIRD not in svg
    root = ET.fromstring(svg.encode())  # well-formed despite the names
    assert root.find(f"{NS}title").text == title
    assert root.find(f".//{NS}text[@id='title']").text == title
    assert by_name(svg)[WEIRD]["label"] is not None


def test_xml_invalid_characters_are_replaced():
    svg = render_flamegraph(Profile({("main", "bad\x01name\x1f"): 1}), title="t\x02")
    names = [f["name"] for f in frames(svg)]
    assert names[-1] == "bad\ufffdname\ufffd"


def test_labels_fit_or_are_omitted():
    profile = Profile({("main", "a_really_long_function_name_" * 4): 50, ("main", "tiny_fn"): 1,
                       ("main", "z"): 949})
    f = by_name(render_flamegraph(profile, title="t"))
    long = f["a_really_long_function_name_" * 4]
    assert long["label"].endswith("..") and len(long["label"]) * 7.2 <= long["width"]
    assert f["tiny_fn"]["label"] is None  # 1.18 px wide: no room for a label


def test_narrow_frames_are_elided_and_counted_in_subtitle():
    profile = Profile({("main", "hot"): 9_990, ("main", "rare"): 7, ("main", "hot", "rarer"): 3})
    svg = render_flamegraph(profile, title="t", min_width_frac=0.001)
    f = by_name(svg)
    assert "rare" not in f and "rarer" not in f
    assert f["main"]["samples"] == "10000"  # the parent keeps the elided samples' width
    assert ET.fromstring(svg.encode()).get("data-elided-samples") == "10"
    subtitle = ET.fromstring(svg.encode()).find(f".//{NS}text[@id='subtitle']").text
    assert "10,000 samples" in subtitle
    assert "10 samples (0.10%) in frames narrower than 0.1% not drawn" in subtitle
    everything = by_name(render_flamegraph(profile, title="t", min_width_frac=0.0))
    assert {"rare", "rarer"} <= everything.keys()


def test_deterministic_bytes():
    shuffled = Profile(dict(reversed(list(TINY.stacks.items()))))
    assert render_flamegraph(TINY, title="tiny") == render_flamegraph(shuffled, title="tiny")


def test_self_contained_no_external_resources():
    svg = render_flamegraph(TINY, title="tiny")
    assert "<script><![CDATA[" in svg
    assert not re.search(r"(href|src)\s*=", svg)
    assert "http://" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in svg


def test_refuses_empty_profile_and_bad_width():
    with pytest.raises(ValueError, match="profile has no samples: cannot render flamegraph 'empty'"):
        render_flamegraph(Profile({}), title="empty")
    with pytest.raises(ValueError, match="min_width_frac"):
        render_flamegraph(TINY, title="t", min_width_frac=1.5)


def test_golden_tiny_svg():
    check_golden("flamegraph_tiny.svg", render_flamegraph(TINY, title="tiny <profile>", subtitle="golden"))


# ---- differential flamegraph ----------------------------------------------------------------

BASE = Profile({("main", "a"): 50, ("main", "b"): 40, ("main", "c"): 10})
CUR = Profile({("main", "a"): 320, ("main", "c"): 40, ("main", "d"): 40})  # 4x longer


def test_diff_widths_are_current_samples_and_attributes_carry_shares():
    svg = render_diff_flamegraph(diff_profiles(BASE, CUR), title="d")
    root = ET.fromstring(svg.encode())
    assert root.get("data-kind") == "diff"
    assert root.get("data-total-samples") == "400" and root.get("data-baseline-samples") == "100"
    f = by_name(svg)
    assert f["a"]["width"] == pytest.approx(0.8 * PLOT_WIDTH, abs=0.01)
    assert (f["a"]["samples"], f["a"]["before-samples"]) == ("320", "50")
    assert (f["a"]["share"], f["a"]["before"], f["a"]["delta"]) == ("0.800000", "0.500000", "+0.300000")
    assert f["c"]["delta"] == "+0.000000"  # 10% before and 10% now: no change
    assert f["main"]["delta"] == "+0.000000"


def test_diff_colours_red_growth_blue_shrink_grey_unchanged():
    f = by_name(render_diff_flamegraph(diff_profiles(BASE, CUR), title="d"))
    assert rgb(f["a"]["fill"]) == (214, 39, 40)  # +30 points: saturated red
    assert rgb(f["d"]["fill"]) == (214, 39, 40)  # new, +10 points
    assert rgb(f["c"]["fill"]) == NEUTRAL_RGB == rgb(f["main"]["fill"])
    shrink = by_name(render_diff_flamegraph(diff_profiles(CUR, BASE), title="d"))
    r, g, b = rgb(shrink["a"]["fill"])
    assert b > 150 and r < 60  # a: 80% -> 50%: blue
    # saturation at 5 points: a 1-point change is a pale tint, not full colour
    pale = by_name(render_diff_flamegraph(
        diff_profiles(Profile({("m", "x"): 50, ("m", "y"): 50}), Profile({("m", "x"): 51, ("m", "y"): 49})),
        title="p"))
    r, g, b = rgb(pale["x"]["fill"])
    assert r > g and r > b and g > 170  # reddish but light


def test_diff_baseline_only_frames_listed_not_drawn():
    svg = render_diff_flamegraph(diff_profiles(BASE, CUR), title="d")
    assert "b" not in by_name(svg)
    notes = [t.text for t in ET.fromstring(svg.encode()).iter(f"{NS}text") if t.get("class") == "note"]
    assert any("Not drawn" in n and "b 40.00% \u2192 gone" in n for n in notes)


def test_diff_frame_shrunk_below_width_is_listed():
    base = Profile({("main", "big"): 500, ("main", "other"): 500})
    cur = Profile({("main", "big"): 1, ("main", "other"): 9_999})
    svg = render_diff_flamegraph(diff_profiles(base, cur), title="d")
    assert "big" not in by_name(svg)
    assert "big 50.00% \u2192 0.01%" in svg


def test_real_diff_top_grower_is_visibly_red():
    base = parse_perf_script((FIXTURES / "perf_script_request_handle.txt").read_text())
    cur = parse_perf_script((FIXTURES / "perf_script_request_handle_slow_serialize.txt").read_text())
    svg = render_diff_flamegraph(diff_profiles(base, cur), title="request/handle")
    fs = frames(svg)
    grower = max(fs, key=lambda f: float(f["delta"]))
    assert grower["name"] == "minilib_serialize_response"
    r, g, b = rgb(grower["fill"])
    assert r > 180 and g < 90 and b < 90
    parse = by_name(svg)["minilib_parse_request"]
    assert float(parse["delta"]) < 0 and rgb(parse["fill"])[2] > rgb(parse["fill"])[0]


def test_golden_tiny_diff_svg():
    check_golden("flamegraph_diff_tiny.svg",
                 render_diff_flamegraph(diff_profiles(BASE, CUR), title="tiny diff", subtitle="base..cur"))


# ---- the inline script, run by node against a minimal DOM -----------------------------------

FAKE_DOM = r"""
const fs = require("fs"), vm = require("vm");
const input = JSON.parse(fs.readFileSync(0, "utf8"));
class El {
  constructor(tag, attrs) { this.tagName = tag; this.attrs = Object.assign({}, attrs); this.children = [];
    this.parentNode = null; this.text = ""; this.listeners = {}; }
  getAttribute(n) { return Object.prototype.hasOwnProperty.call(this.attrs, n) ? this.attrs[n] : null; }
  setAttribute(n, v) { this.attrs[n] = String(v); }
  appendChild(c) { c.parentNode = this; this.children.push(c); return c; }
  get textContent() { return this.text + this.children.map(c => c.textContent).join(""); }
  set textContent(v) { this.text = String(v); this.children = []; }
  *walk() { for (const c of this.children) { yield c; yield* c.walk(); } }
  getElementsByTagName(t) { return [...this.walk()].filter(e => e.tagName === t); }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
}
function build(n) {
  const e = new El(n.tag, n.attrs);
  e.text = n.text;
  n.children.forEach(c => e.appendChild(build(c)));
  return e;
}
const root = build(input.tree);
const all = () => [root, ...root.walk()];
const isFrame = e => e.tagName === "g" && (e.getAttribute("class") || "").split(" ").includes("f");
const document = {
  documentElement: root,
  getElementById: id => all().find(e => e.getAttribute("id") === id) || null,
  querySelectorAll: sel => {
    if (sel !== "g.f") throw new Error("selector " + sel);
    return all().filter(isFrame);
  },
  createElementNS: (ns, tag) => new El(tag, {}),
};
const answers = [], winListeners = {};
const window = { prompt: () => answers.shift(),
  addEventListener: (t, fn) => { (winListeners[t] = winListeners[t] || []).push(fn); } };
function dispatch(target, type, extra) {
  const ev = Object.assign({ type, target, preventDefault() { ev.prevented = true; } }, extra || {});
  for (let el = target; el; el = el.parentNode) (el.listeners[type] || []).forEach(fn => fn(ev));
  (target === null ? winListeners[type] || [] : []).forEach(fn => fn(ev));
  return ev;
}
vm.runInNewContext(input.script, { document, window });
const frameNamed = name => all().filter(isFrame).find(g => g.getAttribute("data-name") === name);
const snapshots = [];
for (const step of input.steps) {
  if (step.do === "hover") dispatch(frameNamed(step.name).getElementsByTagName("rect")[0], "mouseover");
  if (step.do === "click") dispatch(frameNamed(step.name).getElementsByTagName("rect")[0], "click");
  if (step.do === "control") { if (step.answer !== undefined) answers.push(step.answer);
    dispatch(document.getElementById(step.id), "click"); }
  if (step.do === "key") { if (step.answer !== undefined) answers.push(step.answer);
    const ev = dispatch(null, "keydown", { key: step.key, ctrlKey: !!step.ctrl, metaKey: false });
    if (step.key === "f" && !ev.prevented) throw new Error("Ctrl-F not intercepted"); }
  if (step.do === "snapshot") snapshots.push({
    frames: all().filter(isFrame).map(g => { const r = g.getElementsByTagName("rect")[0];
      const t = g.getElementsByTagName("text")[0];
      return { name: g.getAttribute("data-name"), cls: g.getAttribute("class"), x: +r.getAttribute("x"),
               width: +r.getAttribute("width"), fill: r.getAttribute("fill"),
               label: t ? t.textContent : null }; }),
    details: document.getElementById("details").textContent,
    matched: document.getElementById("matched").textContent,
    unzoom: document.getElementById("unzoom").getAttribute("class"),
    search: document.getElementById("search").textContent });
}
process.stdout.write(JSON.stringify(snapshots));
"""


def dom_tree(el: ET.Element) -> dict:
    return {"tag": el.tag.removeprefix(NS), "attrs": dict(el.attrib), "text": el.text or "",
            "children": [dom_tree(c) for c in el if c.tag.removeprefix(NS) != "script"]}


def run_script(svg: str, steps: list[dict]) -> list[dict]:
    node = shutil.which("node")
    assert node is not None, "node runs the SVG's script: scripts/install-test-deps.sh installs it"
    root = ET.fromstring(svg.encode())
    script = root.find(f"{NS}script").text
    payload = json.dumps({"tree": dom_tree(root), "script": script, "steps": steps})
    out = subprocess.run([node, "-e", FAKE_DOM], input=payload, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_script_hover_zoom_reset_and_search():
    svg = render_diff_flamegraph(diff_profiles(BASE, CUR), title="d")
    start, hover, zoomed, reset, searched, cleared = run_script(svg, [
        {"do": "snapshot"},
        {"do": "hover", "name": "a"}, {"do": "snapshot"},
        {"do": "click", "name": "c"}, {"do": "snapshot"},
        {"do": "control", "id": "unzoom"}, {"do": "snapshot"},
        {"do": "key", "key": "f", "ctrl": True, "answer": "^[ad]$"}, {"do": "snapshot"},
        {"do": "key", "key": "Escape"}, {"do": "snapshot"},
    ])
    assert "click to zoom" in start["details"] and start["unzoom"] == "ctl hide"
    assert hover["details"] == "a \u2014 320 samples, 80.00% (before 50.00% \u2192 now 80.00%, +30.00 pts)"

    z = {f["name"]: f for f in zoomed["frames"]}
    assert z["c"]["x"] == PAD_X and z["c"]["width"] == pytest.approx(PLOT_WIDTH)  # fills the width
    assert z["main"]["cls"] == "f parent" and z["main"]["width"] == pytest.approx(PLOT_WIDTH)
    assert z["a"]["cls"] == "f hide" and z["d"]["cls"] == "f hide"  # not on c's path
    assert z["c"]["label"] == "c" and zoomed["unzoom"] == "ctl"

    original = {f["name"]: f for f in start["frames"]}
    for f in reset["frames"]:
        assert f["cls"] == "f"
        assert f["x"] == pytest.approx(original[f["name"]]["x"])
        assert f["width"] == pytest.approx(original[f["name"]]["width"])
    assert reset["unzoom"] == "ctl hide"

    s = {f["name"]: f for f in searched["frames"]}
    assert s["a"]["fill"] == s["d"]["fill"] == "rgb(230,0,230)"
    assert s["c"]["fill"] == original["c"]["fill"]
    assert searched["matched"].startswith("Matched: 90.00%")  # a 80% + d 10%
    assert searched["search"] == "Clear search"
    assert cleared["matched"] == "" and {f["fill"] for f in cleared["frames"]} == {
        f["fill"] for f in start["frames"]}


def test_script_search_counts_nested_matches_once_and_zoom_scales_descendants():
    profile = Profile({("main", "f", "f", "g"): 30, ("main", "f"): 20, ("main", "h"): 50})
    svg = render_flamegraph(profile, title="t")
    zoomed, searched = run_script(svg, [
        {"do": "click", "name": "f"}, {"do": "snapshot"},
        {"do": "control", "id": "unzoom"},
        {"do": "control", "id": "search", "answer": None},
        {"do": "key", "key": "/", "answer": "f"}, {"do": "snapshot"},
    ])
    outer_f = zoomed["frames"][2]  # all, main, f, f, g, h in pre-order
    inner_f, g = zoomed["frames"][3], zoomed["frames"][4]
    assert (outer_f["name"], inner_f["name"], g["name"]) == ("f", "f", "g")
    assert outer_f["width"] == pytest.approx(PLOT_WIDTH)
    assert inner_f["width"] == pytest.approx(PLOT_WIDTH * 30 / 50) == g["width"]
    assert {f["name"]: f["cls"] for f in zoomed["frames"]}["h"] == "f hide"
    assert searched["matched"].startswith("Matched: 50.00%")  # f (50), not f + nested f (80)
