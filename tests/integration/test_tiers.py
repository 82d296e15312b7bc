"""`perfd run --tier T` measures with the tier's sizes and records the tier."""

from __future__ import annotations

from perfd.errors import EXIT_CONFIG

TIERS = """tiers:
  commit: {samples: 2, repetitions: 2}
  nightly: {}
"""


def test_a_tier_run_uses_the_tier_sizes_and_makes_its_own_series(workspace, cli):
    path = workspace.suite()
    path.write_text(path.read_text() + TIERS)
    code, out, err = cli("run", "--suite", "fake", "--commit", workspace.commits[0], "--tier", "commit")
    assert code == 0, err
    assert "[4/4]" in err  # 2 benchmarks x 2 processes instead of 3
    assert workspace.rows("SELECT tier FROM benchmark_runs") == [("commit",)]
    assert workspace.rows("SELECT DISTINCT n_samples FROM processes") == [(2,)]
    code, _, err = cli("run", "--suite", "fake", "--commit", workspace.commits[0], "--tier", "nightly")
    assert code == 0, err
    assert workspace.rows("SELECT DISTINCT n_samples FROM processes WHERE run_id = 2") == [(4,)]
    # other sizes, other series: a smoke run is never compared with a long one
    hashes = workspace.rows("SELECT DISTINCT run_id, config_hash FROM statistics "
                            "WHERE benchmark = 'fake/one'")
    assert len({h for _, h in hashes}) == 2


def test_a_tier_the_suite_does_not_run_in_is_a_configuration_error(workspace, cli):
    path = workspace.suite()
    path.write_text(path.read_text() + TIERS)
    code, _, err = cli("run", "--suite", "fake", "--commit", workspace.commits[0], "--tier", "weekly")
    assert code == EXIT_CONFIG
    assert "does not run in tier 'weekly'" in err
    assert workspace.count("benchmark_runs") == 0
