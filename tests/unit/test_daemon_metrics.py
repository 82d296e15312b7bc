"""The daemon's /metrics collector: literal runs, ratios, alerts, budgets and jobs in a real
store -> the exact samples and labels of the rendered text, checked by promtool too."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from perfd.daemon.metrics import (
    FAMILIES,
    DaemonStatus,
    PerfdCollector,
    absolute_limit,
    metrics_registry,
    render,
)
from perfd.errors import StorageError
from perfd.model import Direction, RunStart, Summary
from perfd.store import AlertDraft, BudgetRecord, JobDraft, RatioRecord, ResultStore, SeriesKey
from tests.unit import test_store
from tests.unit.conftest import CLOCK_START, FakeClock
from tests.unit.test_store import make_result

# SQLite, and PostgreSQL (the duration arithmetic differs); ``store`` and ``clock`` come
# from conftest.py.
store_url = test_store.store_url

MACHINE = "bench-01"
OTHER_MACHINE = "bench-02"
T0 = CLOCK_START
SHAS = [f"{i:x}" * 40 for i in range(1, 10)]
STATUS = DaemonStatus(started_timestamp=1_772_000_000.5, reload_success=True,
                      reload_timestamp=1_772_000_100.0,
                      poll_failures={"minilib": 3, "core-lib": 0}, version="0.9.0")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def summary(benchmark: str, metric: str, unit: str, median: float, mean: float, p95: float,
            p99: float, cv: float = 0.02, direction: Direction = Direction.LOWER) -> Summary:
    return Summary(benchmark=benchmark, metric=metric, unit=unit, direction=direction,
                   n_processes=3, n_samples=9, median=median, mean=mean, stddev=1.0, cv=cv,
                   min=median * 0.9, max=median * 1.1, p95=p95, p99=p99, sample_cv=0.03)


def run(store: ResultStore, clock: FakeClock, *, commit: str, tier: str, start_min: int,
        duration_s: float | None, stats: tuple[Summary, ...] = (), machine: str = MACHINE,
        contended: str | None = None, failed: str | None = None, suite: str = "core",
        commit_time: datetime | None = None) -> int:
    """Store one run: COMPLETED (or CONTENDED / FAILED) after ``duration_s``, RUNNING
    when it is None."""
    started = T0 + timedelta(minutes=start_min)
    run_id = store.begin_run(RunStart(suite=suite, commit_sha=commit, machine_id=machine,
                                      config_hash="cfg", build_hash="bld", started_at=started,
                                      pid=4242, tier=tier, commit_time=commit_time),
                           hostname="host")
    if duration_s is None:
        return run_id
    finished = started + timedelta(seconds=duration_s)
    if failed is not None:
        clock.now = finished
        store.fail_run(run_id, failed)
    else:
        store.complete_run(run_id, make_result(statistics=stats, finished_at=finished),
                           contended=contended)
    return run_id


def budget(run_id: int, index: int, benchmark: str, metric: str, statistic: str, limit: str,
           status: str, action: str = "block") -> BudgetRecord:
    return BudgetRecord(run_id=run_id, budget_index=index, suite="core", benchmark=benchmark,
                        metric=metric, statistic=statistic, limit_text=limit, action=action,
                        min_confidence="MEDIUM", owner="perf-team", status=status, value=1.0,
                        baseline_run_id=None, baseline_value=None, change_pct=None,
                        confidence=None, reason="literal")


def alert(store: ResultStore, benchmark: str, metric: str, confidence: str,
          machine: str = MACHINE, kind: str = "code") -> int:
    draft = AlertDraft(kind=kind, series=SeriesKey("core", benchmark, metric, machine, "cfg"),
                       baseline_commit=SHAS[0], first_bad_commit=SHAS[1], baseline_run_id=None,
                       last_run_id=None, change_pct=12.5, confidence=confidence, p_value=0.001,
                       reason="literal")
    return store.open_alert(draft)


def ratio(run_id: int, reference_id: int, benchmark: str, metric: str, value: float) -> RatioRecord:
    return RatioRecord(run_id=run_id, reference_run_id=None, reference_id=reference_id,
                       benchmark=benchmark, metric=metric, ratio=value, ci_low=value * 0.99,
                       ci_high=value * 1.01, n_pairs=3, pair_ratios=(value,) * 3)


@pytest.fixture
def filled(store: ResultStore, clock: FakeClock) -> ResultStore:
    """The literal history every expectation below is computed from by hand."""
    hash_old = (summary("hash_insert", "time", "ns", 100.0, 101.0, 110.0, 115.0),
                summary("parse_json", "instructions", "count", 911.0, 912.0, 920.0, 921.0,
                        cv=0.001))
    # Run 1, nightly: the latest of parse_json (run 2 does not measure it).
    r1 = run(store, clock, commit=SHAS[0], tier="nightly", start_min=0, duration_s=300.0,
             stats=hash_old)
    # Run 2, commit tier: the latest of hash_insert, with custom metrics of every unit family.
    r2 = run(store, clock, commit=SHAS[1], tier="commit", start_min=60, duration_s=90.0, stats=(
        summary("hash_insert", "time", "ns", 120.0, 121.0, 130.0, 140.0, cv=0.05),
        summary("hash_insert", "throughput", "ops/s", 8e6, 7.5e6, 9e6, 9.5e6,
                direction=Direction.HIGHER),
        summary("hash_insert", "latency", "ms", 1.5, 1.75, 2.0, 2.5),
        summary("hash_insert", "rss", "KiB", 4.0, 4.5, 5.0, 6.0),
        summary("hash_insert", "cpu_share", "%", 25.0, 50.0, 75.0, 100.0),
        summary("hash_insert", "widgets", "widgets", 3.0, 4.0, 5.0, 6.0),
    ))
    # Not history, or not this machine's history: never the latest value.
    ignored = (summary("hash_insert", "time", "ns", 999.0, 999.0, 999.0, 999.0),
               summary("parse_json", "instructions", "count", 1.0, 1.0, 1.0, 1.0))
    r3 = run(store, clock, commit=SHAS[2], tier="compare", start_min=120, duration_s=10.0,
             stats=ignored)
    run(store, clock, commit=SHAS[3], tier="reference", start_min=121, duration_s=10.0,
        stats=ignored)
    run(store, clock, commit=SHAS[4], tier="commit", start_min=180, duration_s=600.0,
        stats=ignored, contended="38% of the samples were taken off-CPU")
    run(store, clock, commit=SHAS[5], tier="commit", start_min=240, duration_s=5.0,
        failed="build failed")
    run(store, clock, commit=SHAS[6], tier="nightly", start_min=300, duration_s=20.0,
        stats=ignored, machine=OTHER_MACHINE)
    run(store, clock, commit=SHAS[7], tier="manual", start_min=360, duration_s=None)

    reference = store.set_reference("core", "main", "v1.0", SHAS[8], set_by="t", reason="t")
    store.save_ratios([ratio(r1, reference.id, "hash_insert", "time", 0.9),  # older run
                       ratio(r2, reference.id, "hash_insert", "time", 1.05),
                       ratio(r3, reference.id, "parse_json", "instructions", 7.0)])  # compare

    store.save_budget_results(r1, [  # older than run 2's verdicts on hash_insert: not shown
        budget(r1, 0, "hash_insert", "time", "median", "1ns", "FAIL"),
        budget(r1, 3, "parse_json", "instructions", "median", "12k", "PASS"),
    ])
    store.save_budget_results(r2, [
        budget(r2, 0, "hash_insert", "time", "median", "2.5us, +5%", "PASS"),
        budget(r2, 1, "hash_insert", "time", "median", "3000 ns", "PASS"),
        budget(r2, 2, "hash_insert", "time", "median", "+10% vs reference", "FAIL"),
        budget(r2, 4, "hash_insert", "time", "p99", "+5%", "NO_DATA", action="warn"),
        budget(r2, 5, "hash_insert", "throughput", "median", "5M/s", "WARN", action="warn"),
        budget(r2, 6, "hash_insert", "throughput", "median", "400k/s", "NO_DATA", action="warn"),
    ])

    alert(store, "hash_insert", "time", "HIGH")
    acknowledged = alert(store, "hash_insert", "throughput", "MEDIUM")
    store.transition(acknowledged, "ACKNOWLEDGED", actor="ann", reason="looking")
    alert(store, "parse_json", "instructions", "HIGH")
    resolved = alert(store, "hash_insert", "latency", "HIGH")
    store.transition(resolved, "RESOLVED", actor="ann", reason="fixed")
    alert(store, "", "time", "LOW", kind="infrastructure")
    alert(store, "hash_insert", "time", "HIGH", machine=OTHER_MACHINE)

    clock.now = T0 + timedelta(hours=10)
    store.enqueue(JobDraft(suite="core", commit_sha=SHAS[0], tier="commit", kind="run",
                           machine_id=MACHINE))
    clock.now = T0 + timedelta(hours=10, minutes=5)
    store.enqueue(JobDraft(suite="core", commit_sha=SHAS[1], tier="commit", kind="run",
                           machine_id=MACHINE))
    store.enqueue(JobDraft(suite="core", commit_sha=SHAS[2], tier="commit", kind="run",
                           machine_id=OTHER_MACHINE))
    claimed = store.claim_job(MACHINE, "worker-1", lease_s=60.0)
    assert claimed is not None
    clock.now = T0 + timedelta(hours=10, minutes=15)  # its lease expired 9 minutes ago
    return store


def scrape(store: Any, status: DaemonStatus = STATUS) -> tuple[str, Samples]:
    return scrape_with(PerfdCollector(store, MACHINE, lambda: status))


def scrape_with(collector: PerfdCollector) -> tuple[str, Samples]:
    """The rendered text of a registry holding ``collector``, and its samples by name and
    labels."""
    text = render(metrics_registry(collector)).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"two samples with one label set: {key}"
            samples[key] = s.value
    return text, samples


def of(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def values(benchmark: str, metric: str, median: float, mean: float, p95: float, p99: float,
           suite: str = "core") -> dict[frozenset[tuple[str, str]], float]:
    return {labels(suite=suite, benchmark=benchmark, metric=metric, statistic=statistic): v
            for statistic, v in (("median", median), ("mean", mean), ("p95", p95),
                                 ("p99", p99))}


def test_benchmark_values_come_from_the_latest_history_run_in_base_units(filled: ResultStore) -> None:
    _, samples = scrape(filled)
    assert of(samples, "perfd_benchmark_seconds") == {
        **values("hash_insert", "time", 1.2e-07, 1.21e-07, 1.3e-07, 1.4e-07),
        **values("hash_insert", "latency", 0.0015, 0.00175, 0.002, 0.0025),
    }
    assert of(samples, "perfd_benchmark_per_second") == values(
        "hash_insert", "throughput", 8e6, 7.5e6, 9e6, 9.5e6)
    assert of(samples, "perfd_benchmark_bytes") == values(
        "hash_insert", "rss", 4096.0, 4608.0, 5120.0, 6144.0)
    assert of(samples, "perfd_benchmark_ratio") == values(
        "hash_insert", "cpu_share", 0.25, 0.5, 0.75, 1.0)
    assert of(samples, "perfd_benchmark_value") == {
        **values("parse_json", "instructions", 911.0, 912.0, 920.0, 921.0),
        **values("hash_insert", "widgets", 3.0, 4.0, 5.0, 6.0),
    }
    cv = of(samples, "perfd_benchmark_cv_ratio")
    assert cv[labels(suite="core", benchmark="hash_insert", metric="time")] == 0.05
    assert cv[labels(suite="core", benchmark="parse_json", metric="instructions")] == 0.001
    assert len(cv) == 7
    # Run 2's ratio; run 1's is older and the compare run's is not history.
    assert of(samples, "perfd_benchmark_reference_ratio") == {
        labels(suite="core", benchmark="hash_insert", metric="time"): 1.05}


def test_the_latest_value_is_the_newest_commit_s_not_the_last_measured(store: ResultStore,
                                                                        clock: FakeClock) -> None:
    # The newer commit ran first; the older one was measured again after it (a re-queued
    # CONTENDED run, a nightly of an older commit). History is in commit order: the newest
    # point of the series, and so the latest value, is the newer commit's.
    newer = summary("hash_insert", "time", "ns", 120.0, 121.0, 130.0, 140.0)
    older = summary("hash_insert", "time", "ns", 100.0, 101.0, 110.0, 115.0)
    run(store, clock, commit=SHAS[1], tier="commit", start_min=0, duration_s=10.0,
        stats=(newer,), commit_time=T0 - timedelta(hours=1))
    run(store, clock, commit=SHAS[0], tier="commit", start_min=60, duration_s=10.0,
        stats=(older,), commit_time=T0 - timedelta(hours=2))
    _, samples = scrape(store)
    assert of(samples, "perfd_benchmark_seconds") == values(
        "hash_insert", "time", 1.2e-07, 1.21e-07, 1.3e-07, 1.4e-07)


def test_the_benchmark_families_are_kept_until_a_run_changes_them(filled: ResultStore,
                                                                  clock: FakeClock) -> None:
    collector = PerfdCollector(filled, MACHINE, lambda: STATUS)
    first, _ = scrape_with(collector)
    kept = collector._values
    again, _ = scrape_with(collector)
    assert again == first and collector._values is kept  # nothing stored in between
    # a new history run: its values are what the next scrape shows
    run(filled, clock, commit=SHAS[3], tier="commit", start_min=600, duration_s=60.0,
        stats=(summary("hash_insert", "time", "ns", 200.0, 201.0, 210.0, 215.0),))
    _, samples = scrape_with(collector)
    assert collector._values is not kept
    assert of(samples, "perfd_benchmark_seconds")[labels(
        suite="core", benchmark="hash_insert", metric="time", statistic="median")] == 2e-07
    # any other run of the machine (this one failed) is a new version too
    kept = collector._values
    filled.fail_run(filled.begin_run(RunStart(suite="core", commit_sha=SHAS[4], machine_id=MACHINE,
                                              config_hash="cfg", build_hash="bld",
                                              started_at=T0 + timedelta(hours=11), pid=1,
                                              tier="commit"), hostname="host"), "boom")
    scrape_with(collector)
    assert collector._values is not kept


def test_budgets_group_by_statistic_and_action_and_never_call_no_data_ok(filled: ResultStore) -> None:
    _, samples = scrape(filled)

    def key(benchmark: str, metric: str, statistic: str, action: str) -> frozenset[tuple[str, str]]:
        return labels(suite="core", benchmark=benchmark, metric=metric, statistic=statistic,
                      action=action, owner="perf-team")

    time_median = key("hash_insert", "time", "median", "block")
    time_p99 = key("hash_insert", "time", "p99", "warn")
    throughput = key("hash_insert", "throughput", "median", "warn")
    instructions = key("parse_json", "instructions", "median", "block")
    assert of(samples, "perfd_budget_ok") == {
        time_median: 0.0,  # two passed, the one against the reference broke
        throughput: 0.0,  # a warning broke (the other budget had no data)
        instructions: 1.0,  # run 1's verdict: run 2 has none for parse_json
    }  # time p99: no budget could judge, so neither 1 nor 0
    assert of(samples, "perfd_budget_no_data") == {time_p99: 1.0, throughput: 1.0}
    assert of(samples, "perfd_budget_limit") == {
        time_median: 2.5e-06,  # the stricter ceiling of 2.5us and 3000 ns, in seconds
        throughput: 5e6,  # the higher floor of 5M/s and 400k/s
        instructions: 12000.0,
    }


def test_the_exported_statistics_can_be_narrowed(filled: ResultStore) -> None:
    collector = PerfdCollector(filled, MACHINE, lambda: STATUS, statistics=("median",))
    _, samples = scrape_with(collector)
    assert of(samples, "perfd_benchmark_per_second") == {
        labels(suite="core", benchmark="hash_insert", metric="throughput", statistic="median"): 8e6}
    with pytest.raises(ValueError, match=r"statistics: must be some of median, mean, p95, p99, "
                                         r"got \['p50'\]"):
        PerfdCollector(filled, MACHINE, lambda: STATUS, statistics=("p50",))


def test_alerts_runs_and_durations(filled: ResultStore) -> None:
    _, samples = scrape(filled)
    assert of(samples, "perfd_alerts_open") == {
        labels(suite="core", kind="code", confidence="HIGH", state="OPEN"): 2.0,
        labels(suite="core", kind="code", confidence="MEDIUM", state="ACKNOWLEDGED"): 1.0,
        labels(suite="core", kind="infrastructure", confidence="LOW", state="OPEN"): 1.0,
    }
    # one sample per series with an active alert, which Alertmanager routes and links by
    active = {
        labels(suite="core", benchmark="hash_insert", metric="time", kind="code",
               confidence="HIGH", state="OPEN"),
        labels(suite="core", benchmark="hash_insert", metric="throughput", kind="code",
               confidence="MEDIUM", state="ACKNOWLEDGED"),
        labels(suite="core", benchmark="parse_json", metric="instructions", kind="code",
               confidence="HIGH", state="OPEN"),
        labels(suite="core", benchmark="", metric="time", kind="infrastructure",
               confidence="LOW", state="OPEN"),
    }
    assert of(samples, "perfd_alert_active") == dict.fromkeys(active, 1.0)
    assert of(samples, "perfd_alert_change_ratio") == dict.fromkeys(active, 0.125)
    outcomes = {("nightly", "COMPLETED"): 1.0, ("commit", "COMPLETED"): 1.0,
                ("commit", "CONTENDED"): 1.0, ("commit", "FAILED"): 1.0,
                ("compare", "COMPLETED"): 1.0, ("reference", "COMPLETED"): 1.0}
    assert of(samples, "perfd_runs_total") == {
        labels(suite="core", tier=tier, outcome=outcome): outcomes.get((tier, outcome), 0.0)
        for tier in ("nightly", "commit", "compare", "reference", "manual")
        for outcome in ("COMPLETED", "CONTENDED", "FAILED")
    }
    assert not of(samples, "perfd_runs_created")

    def buckets(tier: str) -> dict[str, float]:
        return {dict(k)["le"]: v for k, v in of(samples, "perfd_run_duration_seconds_bucket").items()
                if dict(k)["tier"] == tier}

    # commit: the completed 90 s run and the contended 600 s one (the failed run is left out)
    assert buckets("commit") == {"1.0": 0, "2.5": 0, "5.0": 0, "10.0": 0, "30.0": 0, "60.0": 0,
                                 "120.0": 1, "300.0": 1, "600.0": 2, "1200.0": 2, "1800.0": 2,
                                 "3600.0": 2, "+Inf": 2}
    assert buckets("nightly")["120.0"] == 0 and buckets("nightly")["300.0"] == 1
    assert buckets("manual")["+Inf"] == 0
    count = of(samples, "perfd_run_duration_seconds_count")
    total = of(samples, "perfd_run_duration_seconds_sum")
    assert count[labels(suite="core", tier="commit")] == 2
    assert total[labels(suite="core", tier="commit")] == pytest.approx(690.0, abs=1e-6)
    assert total[labels(suite="core", tier="nightly")] == pytest.approx(300.0, abs=1e-6)
    assert of(samples, "perfd_last_run_timestamp_seconds") == {
        labels(suite="core", tier="nightly"): (T0 + timedelta(seconds=300)).timestamp(),
        labels(suite="core", tier="commit"): (T0 + timedelta(minutes=60, seconds=90)).timestamp(),
        labels(suite="core", tier="compare"): (T0 + timedelta(minutes=120, seconds=10)).timestamp(),
        labels(suite="core", tier="reference"): (T0 + timedelta(minutes=121, seconds=10)).timestamp(),
    }


def test_queue_and_daemon_status(filled: ResultStore) -> None:
    _, samples = scrape(filled)
    assert of(samples, "perfd_jobs") == {
        labels(state=state): count for state, count in (
            ("QUEUED", 1.0), ("RUNNING", 1.0), ("DONE", 0.0), ("FAILED", 0.0),
            ("CANCELLED", 0.0), ("SKIPPED", 0.0))}
    assert of(samples, "perfd_job_queue_oldest_age_seconds") == {labels(): 600.0}
    assert of(samples, "perfd_jobs_expired_leases") == {labels(): 1.0}
    kinds = ("run", "confirm", "evidence", "rerun", "bisect")
    assert of(samples, "perfd_job_attempts_total") == {labels(kind=k): float(k == "run") for k in kinds}
    assert of(samples, "perfd_job_retries_total") == {labels(kind=k): 0.0 for k in kinds}
    assert of(samples, "perfd_store_up") == {labels(): 1.0}
    assert of(samples, "perfd_config_reload_success") == {labels(): 1.0}
    assert of(samples, "perfd_config_reload_timestamp_seconds") == {labels(): 1_772_000_100.0}
    assert of(samples, "perfd_start_timestamp_seconds") == {labels(): 1_772_000_000.5}
    assert of(samples, "perfd_repository_fetch_failures") == {
        labels(repository="minilib"): 3.0, labels(repository="core-lib"): 0.0}
    assert of(samples, "perfd_build_info") == {
        labels(version="0.9.0", python=platform.python_version()): 1.0}


def test_a_job_claimed_again_after_its_lease_expired_counts_as_a_retry(filled: ResultStore) -> None:
    again = filled.claim_job(MACHINE, "worker-2", lease_s=60.0)
    assert again is not None and again.attempts == 2
    _, samples = scrape(filled)
    assert of(samples, "perfd_job_attempts_total")[labels(kind="run")] == 2.0
    assert of(samples, "perfd_job_retries_total")[labels(kind="run")] == 1.0
    assert of(samples, "perfd_jobs_expired_leases") == {labels(): 0.0}


def test_no_commit_sha_or_run_id_in_any_label(filled: ResultStore) -> None:
    text, samples = scrape(filled)
    names = {name for _, labelset in samples for name, _ in labelset}
    assert names <= {"suite", "benchmark", "metric", "statistic", "action", "owner", "kind",
                     "confidence", "state", "tier", "outcome", "le", "repository", "version",
                     "python"}
    values_seen = {value for _, labelset in samples for _, value in labelset}
    assert not [v for v in values_seen if any(sha[:7] in v for sha in SHAS)]
    assert not [v for v in values_seen if v.isdigit()]  # no ids
    assert "# TYPE perfd_runs_total counter" in text
    assert all(f"# HELP {f}" in text for f in ("perfd_benchmark_seconds", "perfd_build_info"))


def test_every_family_has_help_and_a_perfd_name(filled: ResultStore) -> None:
    text, _ = scrape(filled)
    helps = [line.split(" ", 3) for line in text.splitlines() if line.startswith("# HELP")]
    assert len(helps) == len(FAMILIES)
    assert all(name.startswith("perfd_") and len(doc) > 20 for _, _, name, doc in helps)


def test_an_empty_store_gives_families_without_benchmark_samples(store: ResultStore) -> None:
    status = DaemonStatus(started_timestamp=1.0, reload_success=False, reload_timestamp=None,
                          poll_failures={}, version="0.9.0")
    _, samples = scrape(store, status)
    assert not of(samples, "perfd_benchmark_seconds")
    assert not of(samples, "perfd_config_reload_timestamp_seconds")
    assert of(samples, "perfd_config_reload_success") == {labels(): 0.0}
    assert of(samples, "perfd_job_queue_oldest_age_seconds") == {labels(): 0.0}


class UnusableStore:
    """A store that must not be read: describe() and registration never touch it."""

    def reading(self) -> Any:
        raise AssertionError("the database was read")


class BrokenStore:
    def reading(self) -> Any:
        raise StorageError("cannot open /var/lib/perfd/perfd.db: disk I/O error")


def test_registering_the_collector_reads_no_database() -> None:
    collector = PerfdCollector(UnusableStore(), MACHINE, lambda: STATUS)  # type: ignore[arg-type]
    registry = metrics_registry(collector)
    described = {m.name for m in collector.describe()}
    assert described == {f.name for f in FAMILIES}
    assert registry is not metrics_registry(collector)  # its own registry every time


def test_a_store_that_cannot_be_read_still_answers_with_the_daemon_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, samples = scrape(BrokenStore())
    assert of(samples, "perfd_store_up") == {labels(): 0.0}
    assert of(samples, "perfd_start_timestamp_seconds") == {labels(): 1_772_000_000.5}
    assert not of(samples, "perfd_runs_total")
    assert "disk I/O error" in caplog.text


def test_limits_are_read_from_the_stored_limit_text() -> None:
    assert absolute_limit("2.5us, +5%", "time", "ns") == 2500.0
    assert absolute_limit("+5% vs reference", "time", "ns") is None
    assert absolute_limit("400k/s", "throughput", "ops/s") == 400_000.0
    assert absolute_limit("2500 ns", "time", "ns") == 2500.0
    assert absolute_limit("3 parsecs", "time", "ns") is None


def test_daemon_status_refuses_negative_failures() -> None:
    with pytest.raises(ValueError, match=r"poll_failures\['minilib'\]: must be >= 0, got -1"):
        DaemonStatus(1.0, True, None, {"minilib": -1}, "0.9.0")
    with pytest.raises(ValueError, match="started_timestamp: must be finite"):
        DaemonStatus(float("nan"), True, None, {}, "0.9.0")


# ----------------------------------------------------------------------------- promtool



def test_promtool_accepts_the_rendered_metrics(filled: ResultStore, promtool: Path) -> None:
    text, samples = scrape(filled)
    assert of(samples, "perfd_benchmark_seconds")  # with data present
    checked = subprocess.run([str(promtool), "check", "metrics"], input=text,
                             capture_output=True, text=True, timeout=60)
    assert (checked.returncode, checked.stderr) == (0, ""), checked.stdout
