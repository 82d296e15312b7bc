"""Two daemons with different machine ids on one real PostgreSQL: each runs only its own
machine's jobs, their series never mix, and killing one mid-job loses nothing and runs
nothing twice."""

from __future__ import annotations

import json
import signal
import time

import pytest
import sqlalchemy as sa

from tests.daemon_process import DaemonProcess, free_port, wait_for
from tests.integration.conftest import daemon_suite

pytestmark = pytest.mark.slow


def test_two_machines_share_one_postgresql(tmp_path, tiny_repo, postgres_cluster, cli,
                                           monkeypatch):
    repo, shas = tiny_repo
    url = postgres_cluster.create_database()
    monkeypatch.delenv("PERFD_CONFIG", raising=False)
    spans = tmp_path / "spans.log"
    machines = {}
    for name in ("bench-a", "bench-b"):
        work = tmp_path / name
        (work / "suites").mkdir(parents=True)
        (work / "suites" / "fake.yaml").write_text(daemon_suite(repo))
        port = free_port()
        (work / "perfd.yaml").write_text(
            f"machine_id: {name}\ndata_dir: state\nstorage_url: {url}\n"
            f'http: {{listen: "127.0.0.1:{port}"}}\npoll: {{interval_s: 0}}\n'
            "jobs: {lease_s: 4, heartbeat_s: 1, max_attempts: 3, burst: all}\n")
        machines[name] = (work, port)

    def enqueue(name: str, commit: str) -> dict:
        work, _ = machines[name]
        monkeypatch.chdir(work)
        code, out, err = cli("enqueue", "--suite", "fake", "--commit", commit, "--json")
        assert code == 0, err
        return json.loads(out)

    for name in machines:
        for sha in shas:
            assert enqueue(name, sha)["machine_id"] == name

    env = {"FAKE_HARNESS_SPAN_LOG": str(spans), "FAKE_HARNESS_SLEEP": "0.4"}
    a = DaemonProcess(machines["bench-a"][0], machines["bench-a"][1],
                      extra_env={**env, "PERFD_MACHINE_LOCK": str(tmp_path / "a.lock")})
    b = DaemonProcess(machines["bench-b"][0], machines["bench-b"][1],
                      extra_env={**env, "PERFD_MACHINE_LOCK": str(tmp_path / "b.lock")})
    engine = sa.create_engine(url.replace("postgresql+psycopg", "postgresql+psycopg"))
    try:
        a.wait_ready()
        b.wait_ready()

        def rows(sql: str) -> list[tuple]:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql))]

        # kill machine a while it measures; b goes on
        wait_for("a run on bench-a", lambda: rows(
            "SELECT count(*) FROM benchmark_runs WHERE machine_id = 'bench-a' "
            "AND status = 'RUNNING'")[0][0] >= 1, 60)
        a.kill9()
        time.sleep(1)
        a = DaemonProcess(machines["bench-a"][0], machines["bench-a"][1],
                          extra_env={**env, "PERFD_MACHINE_LOCK": str(tmp_path / "a.lock")})
        a.wait_ready()

        def all_done() -> bool:
            states = rows("SELECT state, count(*) FROM jobs GROUP BY state")
            return dict(states).get("DONE", 0) == 8 and set(dict(states)) == {"DONE"}

        # per machine: 2 run jobs and their 2 confirm jobs
        wait_for("every job of both machines", all_done, 120)
        per_job = rows("SELECT j.machine_id, r.machine_id FROM jobs j JOIN benchmark_runs r "
                       "ON r.id = j.run_id")
        assert per_job and all(job == run for job, run in per_job)  # own machine's jobs only
        completed = rows("SELECT machine_id, commit_sha, count(*) FROM benchmark_runs "
                         "WHERE status = 'COMPLETED' AND tier = 'commit' "
                         "GROUP BY machine_id, commit_sha")
        assert sorted((m, n) for m, _sha, n in completed) == [
            ("bench-a", 1), ("bench-a", 1), ("bench-b", 1), ("bench-b", 1)]  # nothing twice
        series = rows("SELECT DISTINCT r.machine_id FROM statistics s JOIN benchmark_runs r "
                      "ON r.id = s.run_id")
        assert sorted(m for (m,) in series) == ["bench-a", "bench-b"]
        a_series = a.get("/api/v1/series")["items"]
        assert {s["machine_id"] for s in a_series} == {"bench-a"}  # never mixed
    finally:
        for d in (a, b):
            d.stop(signal.SIGTERM)
        engine.dispose()
