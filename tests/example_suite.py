"""The shipped example suite (suites/example.yaml) on another repository, for tests and
benchmarks: its build steps and harness stay exactly as shipped; the name, the repository,
some defaults and the benchmark list change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "suites" / "example.yaml"


def write_example_suite(suites_dir: Path, repo: Path, *, name: str = "example",
                        defaults: dict[str, Any] | None = None,
                        benchmarks: list[str] | None = None, **top: Any) -> Path:
    """Write ``suites_dir/<name>.yaml``: the example suite on ``repo``, with ``defaults`` merged
    into its defaults, only ``benchmarks`` (names, each with the shipped entry's settings) when
    given, and other top-level keys replaced by ``top``. Links suites/example (the benchmark
    sources its build compiles) beside it. Returns the file."""
    suite = yaml.safe_load(EXAMPLE.read_text())
    suite.update(name=name, repository=str(repo), **top)
    suite["defaults"].update(defaults or {})
    if benchmarks is not None:
        shipped = {b["name"]: b for b in suite["benchmarks"]}
        missing = sorted(set(benchmarks) - set(shipped))
        assert not missing, f"not in {EXAMPLE}: {missing}"
        suite["benchmarks"] = [shipped[b] for b in benchmarks]
    suites_dir.mkdir(parents=True, exist_ok=True)
    sources = suites_dir / "example"
    if not sources.exists():
        sources.symlink_to(ROOT / "suites" / "example")
    path = suites_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path
