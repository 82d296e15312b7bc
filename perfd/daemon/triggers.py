"""What puts jobs in the queue: polling the tracked branches, GitHub push webhooks, and the
nightly/weekly cron tiers (APScheduler 3.11), with the catch-up of tiers missed while the
daemon was down.

Scheduler settings, each set on purpose (APScheduler's defaults would skip a nightly run
that starts one second late):

- ids ``tier-<tier>-<n>`` (the n-th schedule of the daemon file) and ``poll``, with
  ``replace_existing=True``: a reload re-adds every job under the same id and removes the
  ones the new file no longer has.
- ``misfire_grace_time``: a schedule's ``misfire_grace_s`` (default one hour); the poll's is
  its interval.
- ``coalesce=True``: several missed fire times run once.
- ``max_instances=1``: a tier never runs twice at once (it only enqueues; the worker runs).

Schedules live in memory, rebuilt from the YAML at start and at every reload; perfd's own
job table is the record of what ran, so the catch-up at start compares each schedule's last
due time with the newest job of that tier.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from perfd.config import ConfigSet, ScheduleConfig, SuiteConfig
from perfd.context import Services
from perfd.errors import PerfdError, RepositoryError, UsageError
from perfd.flows.jobs import COMMIT_ID, Enqueued, EnqueueRequest, enqueue, list_jobs

log = logging.getLogger("perfd.daemon.triggers")
# How far back the start-up catch-up looks for a missed nightly or weekly time.
CATCH_UP_WINDOW = timedelta(days=8)


def cron_trigger(schedule: ScheduleConfig) -> CronTrigger:
    """The schedule as a cron trigger in its own time zone, days by name (never numbers)."""
    hour, minute = schedule.at.split(":")
    return CronTrigger(day_of_week=",".join(schedule.days), hour=int(hour), minute=int(minute),
                       timezone=ZoneInfo(schedule.timezone))


def last_due(schedule: ScheduleConfig, now: datetime) -> datetime | None:
    """The schedule's latest fire time at or before ``now`` (within CATCH_UP_WINDOW)."""
    trigger = cron_trigger(schedule)
    found = None
    at = trigger.get_next_fire_time(None, now - CATCH_UP_WINDOW)
    while at is not None and at <= now:
        found = at
        at = trigger.get_next_fire_time(at, at + timedelta(seconds=1))
    return found


def suites_in(config: ConfigSet, tier: str) -> list[SuiteConfig]:
    return [s for s in config.suites.values() if tier in s.tier_names()]


def enqueue_tier(services: Services, tier: str, requested_by: str) -> list[Enqueued]:
    """A job per suite that runs in ``tier``, at the head of each of its tracked branches."""
    queued = []
    for suite in suites_in(services.config, tier):
        try:
            repo = services.repos.refresh(suite.repository_location())
        except RepositoryError as exc:
            log.error("%s tier of %s: %s", tier, suite.name, exc)
            continue
        for branch in suite.branches:
            try:
                head = repo.resolve(branch)
                queued.append(enqueue(services, EnqueueRequest(
                    suite.name, head, tier, branch=branch, requested_by=requested_by)))
            except PerfdError as exc:
                log.error("%s tier of %s on %s: %s", tier, suite.name, branch, exc)
    return queued


def catch_up(services: Services, now: datetime) -> list[Enqueued]:
    """Enqueue every tier whose last due time passed with no job of that tier since (the
    daemon was down, or busy past the misfire grace)."""
    queued = []
    with services.store.reading() as r:
        latest = {(s.name, sched.tier): r.last_job(s.name, sched.tier, services.machine_id,
                                                   states=("QUEUED", "RUNNING", "DONE", "FAILED",
                                                           "CANCELLED", "SKIPPED"))
                  for sched in services.config.daemon.schedules
                  for s in suites_in(services.config, sched.tier)}
    for sched in services.config.daemon.schedules:
        due = last_due(sched, now)
        if due is None:
            continue
        missed = [name for (name, tier), job in latest.items()
                  if tier == sched.tier and (job is None or job.created_at < due)]
        if missed:
            log.info("catching up the %s tier due %s for %s", sched.tier, due.isoformat(),
                     ", ".join(missed))
            queued += [q for q in enqueue_tier(services, sched.tier, "catch-up")
                       if q.job.suite in missed]
    return queued


@dataclass
class Poller:
    """New commits on the tracked branches of every suite that runs in the commit tier.

    The first poll of a branch queues its head unless that commit was already measured;
    later polls queue every commit since the last head seen (the burst policy then keeps
    the newest). An unreachable remote is tried again after an exponential backoff."""

    services: Callable[[], Services]
    heads: dict[tuple[str, str], str] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # repository -> consecutive failures
    retry_at: dict[str, float] = field(default_factory=dict)

    def poll(self) -> list[Enqueued]:
        services = self.services()
        settings = services.config.daemon.poll
        queued: list[Enqueued] = []
        for suite in suites_in(services.config, "commit"):
            location = suite.repository_location()
            if time.monotonic() < self.retry_at.get(location, 0.0):
                continue
            try:
                repo = services.repos.refresh(location)
            except RepositoryError as exc:
                n = self.failures[location] = self.failures.get(location, 0) + 1
                wait = min(settings.max_backoff_s, max(settings.interval_s, 1.0) * 2 ** (n - 1))
                self.retry_at[location] = time.monotonic() + wait
                log.error("poll %s (failure %d, next try in %.0f s): %s", location, n, wait, exc)
                continue
            self.failures[location] = 0
            for branch in suite.branches:
                try:
                    queued += self._branch(services, suite, repo, branch)
                except PerfdError as exc:
                    log.error("poll %s on %s: %s", suite.name, branch, exc)
        return queued

    def _branch(self, services: Services, suite: SuiteConfig, repo: Any,
                branch: str) -> list[Enqueued]:
        head = repo.resolve(branch)
        last = self.heads.get((suite.name, branch))
        if last == head:
            return []
        if last is None:
            measured = {j.commit_sha for j in list_jobs(services, suite=suite.name, limit=200)
                        if j.kind == "run" and j.tier == "commit"}
            new = [] if head in measured else [head]
        elif repo.is_ancestor(last, head):
            new = [sha for sha, _subject in repo.commits_between(last, head)]
        else:  # a force push: measure the new head
            new = [head]
        self.heads[(suite.name, branch)] = head
        return [enqueue(services, EnqueueRequest(suite.name, sha, "commit", branch=branch,
                                                 requested_by="poll")) for sha in new]


class Schedules:
    """The APScheduler jobs of the daemon file (module docstring)."""

    def __init__(self, tier: Callable[[str], None], poll: Callable[[], None]) -> None:
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self._tier = tier
        self._poll = poll

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)

    def apply(self, config: ConfigSet) -> list[str]:
        """(Re)build every job from ``config``; returns their ids."""
        wanted: list[str] = []
        for i, sched in enumerate(config.daemon.schedules):
            job_id = f"tier-{sched.tier}-{i}"
            self.scheduler.add_job(
                self._tier, cron_trigger(sched), args=[sched.tier], id=job_id,
                name=f"{sched.tier} at {sched.at} {sched.timezone} on {','.join(sched.days)}",
                replace_existing=True, misfire_grace_time=int(sched.misfire_grace_s),
                coalesce=True, max_instances=1)
            wanted.append(job_id)
        interval = config.daemon.poll.interval_s
        if interval > 0:
            self.scheduler.add_job(
                self._poll, IntervalTrigger(seconds=interval), id="poll",
                name=f"poll every {interval:g} s", replace_existing=True,
                misfire_grace_time=max(1, int(interval)), coalesce=True, max_instances=1,
                next_run_time=datetime.now(ZoneInfo("UTC")))
            wanted.append("poll")
        for job in self.scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()
        return wanted


# ----------------------------------------------------------------------------- webhooks


class SignatureError(PerfdError):
    """A webhook without a valid signature (HTTP 401)."""

    exit_code = 2


def check_signature(secret: str | None, body: bytes, header: str | None) -> None:
    """GitHub's X-Hub-Signature-256 (``sha256=<hex HMAC-SHA256 of the body>``), compared in
    constant time. Raises SignatureError."""
    if not secret:
        raise SignatureError("webhooks are refused: no webhook secret is configured")
    if not header or not header.startswith("sha256="):
        raise SignatureError("missing X-Hub-Signature-256 header")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, header):
        raise SignatureError("bad X-Hub-Signature-256 signature")


@dataclass(frozen=True, slots=True)
class Push:
    branch: str
    commits: tuple[str, ...]  # oldest first, validated commit ids
    urls: frozenset[str]  # the repository as GitHub names it (clone, ssh, html, full name)


def parse_push(payload: Mapping[str, Any]) -> Push | None:
    """The push of a GitHub push event (None: a branch deletion or a tag). Raises
    UsageError for a malformed payload or commit id (HTTP 400)."""
    ref = payload.get("ref")
    repo = payload.get("repository")
    if not isinstance(ref, str) or not isinstance(repo, Mapping):
        raise UsageError("push payload needs ref and repository")
    after = check_commit(payload.get("after"))
    if not ref.startswith("refs/heads/") or set(after) == {"0"}:
        return None
    commits = payload.get("commits") or []
    if not isinstance(commits, list):
        raise UsageError("push payload: commits must be a list")
    ids = [check_commit(c.get("id") if isinstance(c, Mapping) else c) for c in commits]
    if after not in ids:
        ids.append(after)
    urls = {str(repo[k]) for k in ("clone_url", "ssh_url", "git_url", "html_url", "url")
            if isinstance(repo.get(k), str)}
    if isinstance(repo.get("full_name"), str):
        urls.add(repo["full_name"])
    return Push(ref.removeprefix("refs/heads/"), tuple(ids), frozenset(urls))


def check_commit(value: object) -> str:
    if not isinstance(value, str) or not COMMIT_ID.match(value) or len(value) != 40:
        raise UsageError(f"not a full commit id: {str(value)[:80]!r}")
    return value


def suites_for_push(config: ConfigSet, push: Push) -> list[SuiteConfig]:
    """Suites in the commit tier whose repository is the pushed one and that track its branch."""
    def same(location: str) -> bool:
        bare = location.removesuffix(".git").removeprefix("file://").rstrip("/")
        return any(bare == url.removesuffix(".git").removeprefix("file://").rstrip("/")
                   or bare.endswith("/" + url.removesuffix(".git")) for url in push.urls)

    return [s for s in suites_in(config, "commit")
            if push.branch in s.branches and same(s.repository_location())]
