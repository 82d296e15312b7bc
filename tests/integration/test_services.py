"""Flows driven through Services built by hand, as the daemon will build them: typed events,
a fake host probe, one mirror per URL per process, and builds that never trip over each other."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from perfd.config import load_config_set
from perfd.context import Services
from perfd.events import BuildFinished, BuildStarted, Event, ProcessStarted, RunBegun
from perfd.flows.run import RunRequest, run
from perfd.model import RunTier
from perfd.runner.build import Builder
from perfd.runner.fingerprint import HostProbe
from perfd.runner.git import RepositoryCache

T0 = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)


def make_services(workspace, tmp_path: Path, events: list[Event]) -> Services:
    config = load_config_set(workspace.path / "perfd.yaml", cwd=workspace.path)
    probe = HostProbe(sys_root=tmp_path / "no-sys", proc_root=tmp_path / "no-proc",
                      compiler=lambda: "cc 0.0", hostname=lambda: "fake-host")
    return Services.create(config, events=events.append, probe=probe, clock=lambda: T0,
                           machine_lock_path=tmp_path / "machine.lock")


def test_a_run_through_services_reports_typed_events_and_records_the_fake_host(workspace, tmp_path):
    workspace.suite()
    events: list[Event] = []
    services = make_services(workspace, tmp_path, events)
    outcome = run(services, RunRequest(suite="fake", commit=workspace.commits[0],
                                       tier=RunTier.NIGHTLY)).outcome
    kinds = [type(e) for e in events]
    assert kinds[:3] == [BuildStarted, BuildFinished, RunBegun]
    assert kinds[3:] == [ProcessStarted] * 6
    begun = events[2]
    assert isinstance(begun, RunBegun) and begun.run_id == outcome.run_id and begun.tier == "nightly"
    assert [e.index for e in events[3:] if isinstance(e, ProcessStarted)] == [1, 2, 3, 4, 5, 6]
    assert outcome.machine_id == "test-machine" and outcome.suite == "fake"
    # the probe handed in is the one that fingerprinted the run (nothing read from /sys)
    assert outcome.result.environment.hostname == "fake-host"
    assert outcome.result.environment.governor is None
    detail = services.store.get_run(outcome.run_id)
    assert detail.info.tier == "nightly" and detail.environment["compiler"] == "cc 0.0"
    assert detail.info.started_at == detail.info.finished_at == T0  # the clock handed in
    assert not services.machine.held  # released when the flow returned


def test_a_url_repository_is_mirrored_once_per_process(tiny_repo, tmp_path):
    repo, shas = tiny_repo
    cache = RepositoryCache(tmp_path / "mirrors")
    url = f"file://{repo}"
    first = cache.get(url)
    assert cache.get(url) is first  # no second fetch
    assert first.resolve(shas[1]) == shas[1]
    assert first.path.parent == tmp_path / "mirrors"
    assert cache.refresh(url) is not first  # the poller asks for a fetch explicitly


def test_two_builds_of_one_key_at_once_build_once(workspace, tmp_path):
    workspace.suite()
    config = load_config_set(workspace.path / "perfd.yaml", cwd=workspace.path)
    suite = config.suite("fake")
    repo = RepositoryCache(tmp_path / "mirrors").get(suite.repository_location())
    results, errors = [], []

    def build() -> None:
        try:  # a Builder each, as two perfd processes would have
            results.append(Builder(tmp_path / "builds").build(suite, repo, workspace.commits[0]))
        except Exception as exc:  # noqa: BLE001 - the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(b.cached for b in results) == [False, True]
    assert len({b.binary for b in results}) == 1 and results[0].binary.is_file()
