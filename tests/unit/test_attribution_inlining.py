"""Attribution through inlining: a grown function's static callees in its translation unit (its
file and the project headers it includes), and the commits that changed only one of them (a
small C reader, then a real temporary git history)."""

from __future__ import annotations

from pathlib import Path

from perfd.evidence.attribution import (
    Attribution,
    c_functions,
    called_names,
    code_only,
    source_name,
    static_callees,
    suspects_for,
    unit_static_callees,
)
from perfd.runner.git import Repository
from tests.conftest import git

# F calls the static helper h, h calls the static g; g calls the extern library function and
# a function-like macro; cold is static but never called from F; pub is not static.
SOURCE = """\
#include <string.h>
#include "tuning.h"

#define INLINE static inline __attribute__((always_inline))
#define TWICE(x) ((x) * 2)

static int h(const char *s, int n);   /* a prototype first: h(s, n) { is in a comment */

INLINE int g(int x)
{
    return TWICE(x) + (int)strlen("h(1)") + SCALE_G;
}

static int cold(int x) { return x - 1; }

int pub(int x) { return x + 1; }

static int h(const char *s, int n)
{
    int acc = 0;
    for (int i = 0; i < n; i++)
        acc += g(s[i]);
    return acc;
}

__attribute__((noinline)) int F(const char *s, int n)
{
    if (n < 0)
        return cold(n);   // cold( is a call, but only of a static the closure also follows
    return h(s, n) + pub(n);
}
"""


def test_c_functions_lists_definitions_and_whether_they_are_static():
    assert c_functions(SOURCE) == {"g": True, "cold": True, "pub": False, "h": True, "F": False}


def test_c_functions_skips_declarations_initialisers_and_type_bodies():
    source = """\
typedef struct { int a; } pair;
static const struct { const char *n; int v; } table[] = { {"x", 1}, {"y(", 2} };
int declared(int);
_Static_assert(sizeof(pair) == 4, "pair");
void late(void) __attribute__((cold));
void late(void) __attribute__((unused)) { }
static void nested_blocks(void) { if (1) { } }
"""
    assert c_functions(source) == {"late": False, "nested_blocks": True}


def test_code_only_blanks_comments_and_strings_but_keeps_offsets():
    text = 'a(); /* b() */ c("d()"); // e()\nf(\'(\');'
    code = code_only(text)
    assert len(code) == len(text) and code.count("\n") == 1
    assert called_names(code) == ["a", "c", "f"]


def test_called_names_skip_keywords_and_member_calls():
    body = "{ if (x) return sizeof(y) + p->cb(1) + s.op(2) + real(3); while (ok()) {} }"
    assert called_names(body) == ["real", "ok"]


def test_static_callees_are_the_closure_within_the_file_with_the_call_path():
    assert static_callees(SOURCE, "F") == {
        "cold": ("F", "cold"),
        "h": ("F", "h"),
        "g": ("F", "h", "g"),
    }
    assert static_callees(SOURCE, "F", depth=1) == {"cold": ("F", "cold"), "h": ("F", "h")}
    assert static_callees(SOURCE, "h") == {"g": ("h", "g")}
    assert static_callees(SOURCE, "missing") == {}


# A translation unit: lib.c includes its own header and a project header with static inline
# helpers; a header-level macro makes a helper static.
UNIT_C = """\
#include "util.h"
#include <minimath.h>

int run(int x)
{
    return clamp(x) + square(x) + ext(x);
}
"""
UNIT_UTIL = """\
#ifndef UTIL_H
#define UTIL_H
#define HELPER static inline
int ext(int x);
HELPER int clamp(int x) { return x < 0 ? 0 : x; }
#endif
"""
UNIT_MATH = """\
static inline int square(int x) { return x * x + LIMIT; }
"""


def test_unit_static_callees_follow_helpers_into_included_headers():
    unit = {"src/lib.c": UNIT_C, "src/util.h": UNIT_UTIL, "include/minimath.h": UNIT_MATH}
    assert unit_static_callees(unit, "run") == {
        "clamp": ("src/util.h", ("run", "clamp")),
        "square": ("include/minimath.h", ("run", "square")),
    }
    # a function defined only in a header is not the unit's to follow from the .c file
    assert unit_static_callees(unit, "clamp") == {}
    assert unit_static_callees({}, "run") == {}


def test_source_name_of_profile_frames():
    assert source_name("parse_header (inlined)") == "parse_header"
    assert source_name("run_batch.isra.0") == "run_batch"
    assert source_name("f.constprop.0.cold") == "f"
    assert source_name("[unknown] (libc.so.6)") == "[unknown] (libc.so.6)"


# ---- over a real git history ----------------------------------------------------------------


def commit(repo: Path, message: str) -> str:
    git(repo, "add", ".")
    git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def history(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """import; g gets slower (only g's body); a comment and a reformatting of h (no change);
    cold changes; the helper's macro changes; an unrelated file."""
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "tuning.h").write_text("#define SCALE_G 1\n")
    (repo / "lib.c").write_text(SOURCE)
    shas = {"base": commit(repo, "import")}
    text = SOURCE.replace("return TWICE(x) +", "return TWICE(x) + TWICE(TWICE(x)) / 4 +")
    (repo / "lib.c").write_text(text)
    shas["slow_g"] = commit(repo, "g: a slower formula")
    text = text.replace("    int acc = 0;\n", "    /* accumulate */\n    int   acc = 0;\n")
    (repo / "lib.c").write_text(text)
    shas["cosmetic"] = commit(repo, "h: comment and spacing")
    text = text.replace("return x - 1;", "return x - 2;")
    (repo / "lib.c").write_text(text)
    shas["cold"] = commit(repo, "cold: off by two")
    (repo / "tuning.h").write_text("#define SCALE_G 3\n")
    shas["macro"] = commit(repo, "tuning: SCALE_G 3")
    (repo / "README").write_text("docs\n")
    shas["head"] = commit(repo, "docs")
    return repo, shas


def test_a_commit_that_changed_only_an_inlined_helper_is_a_suspect_of_the_public_function(tmp_path):
    repo, shas = history(tmp_path)
    suspects = suspects_for(Repository(repo), shas["base"], shas["head"], "F")
    assert [(s.sha, s.function, s.why) for s in suspects] == [
        (shas["slow_g"], "F", "changed static helper g (inlined into F via h) in lib.c"),
        (shas["cold"], "F", "changed static helper cold (inlined into F) in lib.c"),
        (shas["macro"], "F", "changed SCALE_G, used by static helper g (inlined into F via h)"),
    ]
    assert [s.subject for s in suspects] == ["g: a slower formula", "cold: off by two", "tuning: SCALE_G 3"]


def test_a_helper_the_profile_shows_as_its_own_frame_is_called_not_inlined(tmp_path):
    repo, shas = history(tmp_path)
    suspects = suspects_for(Repository(repo), shas["base"], shas["cold"], "F",
                            profiled={"main", "F", "h", "g.constprop.0"})
    assert [s.why for s in suspects] == [
        "changed static helper g (called by F via h) in lib.c",
        "changed static helper cold (inlined into F) in lib.c",
    ]


def test_a_commit_that_changed_only_a_static_inline_helper_in_a_header_is_a_suspect(tmp_path):
    repo = tmp_path / "r"
    (repo / "src").mkdir(parents=True)
    (repo / "include").mkdir()
    (repo / "lib" / "include").mkdir(parents=True)  # a second util.h: the relative one wins
    git(repo, "init", "-q", "-b", "main")
    (repo / "src" / "lib.c").write_text(UNIT_C)
    (repo / "src" / "util.h").write_text(UNIT_UTIL)
    (repo / "lib" / "include" / "util.h").write_text("static int clamp(int x) { return x; }\n")
    (repo / "include" / "minimath.h").write_text(UNIT_MATH)
    (repo / "include" / "limits.h").write_text("#define LIMIT 0\n")
    base = commit(repo, "import")
    (repo / "src" / "util.h").write_text(UNIT_UTIL.replace("x < 0 ? 0 : x", "x < 1 ? 1 : x"))
    clamp = commit(repo, "util: clamp at 1")
    (repo / "lib" / "include" / "util.h").write_text("static int clamp(int x) { return -x; }\n")
    commit(repo, "lib: the other clamp")
    (repo / "include" / "minimath.h").write_text(UNIT_MATH.replace("x * x", "x * x * 1"))
    square = commit(repo, "minimath: square")
    (repo / "include" / "limits.h").write_text("#define LIMIT 1\n")
    limit = commit(repo, "limits: LIMIT 1")
    suspects = suspects_for(Repository(repo), base, limit, "run")
    assert [(s.sha, s.why) for s in suspects] == [
        (clamp, "changed static helper clamp (inlined into run) in src/util.h"),
        (square, "changed static helper square (inlined into run) in include/minimath.h"),
        (limit, "changed LIMIT, used by static helper square (inlined into run)"),
    ]


def test_an_inlined_frame_is_looked_up_by_its_function_name(tmp_path):
    repo, shas = history(tmp_path)
    attribution = Attribution(Repository(repo), shas["base"], shas["head"])
    (suspect, macro) = attribution.suspects("g (inlined)")
    assert (suspect.sha, suspect.function, suspect.why) == (
        shas["slow_g"], "g (inlined)", "changed g in lib.c")
    assert macro.sha == shas["macro"] and macro.why == "changed SCALE_G, used by g"
    # h's own body only got a comment and spacing: not a change
    assert [s.sha for s in attribution.suspects("h")] == [shas["slow_g"], shas["macro"]]
    assert attribution.suspects("[unknown] (libc.so.6)") == []
    assert attribution.suspects("pub") == []
