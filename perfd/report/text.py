"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from perfd.model import EnvFingerprint, Summary


def fmt_value(value: float) -> str:
    """A measured value with about 4 significant digits and thousands separators."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.4g}"


def pct(x: float) -> str:
    """A signed percentage to one decimal: ``+10.0%``."""
    return f"{x:+.1f}%"


def ci_pct(ratio_ci: tuple[float, float]) -> str:
    """A ratio's confidence interval as percent changes: ``[+9.4%, +11.1%]``."""
    lo, hi = ratio_ci
    return f"[{pct((lo - 1) * 100)}, {pct((hi - 1) * 100)}]"


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell (its pipes escaped)."""
    return text.replace("|", "\\|")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Aligned columns; column indexes in `right` are right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def statistics_table(stats: Sequence[Summary]) -> str:
    """benchmark x metric summary: process-level median and CV, sample-level p95/p99."""
    rows = [
        [s.benchmark, s.metric, s.unit, str(s.n_processes), str(s.n_samples), fmt_value(s.median),
         f"{s.cv * 100:.2f}%", fmt_value(s.min), fmt_value(s.max), fmt_value(s.p95),
         fmt_value(s.p99)]
        for s in stats
    ]
    headers = ["benchmark", "metric", "unit", "procs", "samples", "median", "cv", "min", "max",
               "p95", "p99"]
    return table(headers, rows, right=range(3, 11))


def environment_line(env: EnvFingerprint) -> str:
    def onoff(flag: bool | None) -> str:
        return "unknown" if flag is None else ("on" if flag else "off")

    load = "unknown" if env.load_avg_1m is None else f"{env.load_avg_1m:.2f}"
    return (
        f"{env.hostname}: {env.cpu_model or 'unknown CPU'} x{env.cpu_count}, kernel "
        f"{env.kernel or 'unknown'}, governor {env.governor or 'unknown'}, boost "
        f"{onoff(env.boost)}, SMT {onoff(env.smt)}, isolated CPUs {env.isolated_cpus or 'none'}, "
        f"load {load}, compiler {env.compiler or 'unknown'}"
    )
