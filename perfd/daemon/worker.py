"""The daemon's one worker per machine: claim a job, run it through flows.jobs, record how it
ended, one job at a time (every job that measures holds the machine lock as the CLI does).

A claimed job carries a lease that a heartbeat thread extends every ``jobs.heartbeat_s``; a
worker that dies stops extending it, and any worker of the machine claims the job again once
the lease has expired. A job cancelled while it runs loses its lease: its heartbeat says so
and the worker records nothing more for it. A failed job goes back to the queue after a
backoff until it has used ``max_attempts``; then it stays FAILED with its error.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from perfd.context import Services
from perfd.errors import ConflictError, PerfdError
from perfd.flows.jobs import Executed, execute
from perfd.records import Job

log = logging.getLogger("perfd.daemon.worker")

# A failed job is tried again after this many seconds times its attempts so far.
RETRY_BACKOFF_S = 30.0


def worker_id() -> str:
    """Who holds a lease: host, pid and a random part (a restarted daemon is someone else)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Current:
    job: Job
    lost: threading.Event  # the lease is gone (cancelled, or claimed by another worker)


class Worker:
    """Runs jobs of this machine serially. ``services`` gives the config snapshot a job runs
    on (taken when it is claimed: a reload meanwhile does not change a running job)."""

    def __init__(self, services: Callable[[], Services], *, owner: str | None = None,
                 idle_wait_s: float = 1.0) -> None:
        self.services = services
        self.owner = owner or worker_id()
        self.wake = threading.Event()  # set by triggers: a job may be waiting
        self.idle_wait_s = idle_wait_s
        self.current: Current | None = None

    def run_forever(self, stop: threading.Event) -> None:
        """Claim and run jobs until ``stop`` is set (the job in hand finishes first)."""
        while not stop.is_set():
            try:
                busy = self.run_one()
            except PerfdError as exc:  # the store itself failed (database gone): wait, retry
                log.error("job queue: %s", exc)
                busy = False
            if not busy:
                self.wake.wait(self.idle_wait_s)
                self.wake.clear()

    def run_one(self) -> bool:
        """Claim one job and run it; False when there was none."""
        services = self.services()
        settings = services.config.daemon.jobs
        job = services.store.claim_job(services.machine_id, self.owner, settings.lease_s)
        if job is None:
            return False
        log.info("job %d: %s of %s at %s (%s tier, attempt %d of %d)", job.id, job.kind,
                 job.suite, job.commit_sha[:12], job.tier, job.attempts, job.max_attempts)
        current = self.current = Current(job, threading.Event())
        beat = threading.Thread(target=self._heartbeat, args=(services, current),
                                name=f"perfd-heartbeat-{job.id}", daemon=True)
        beat.start()
        try:
            self._run(services, current)
        finally:
            self.current = None
            current.lost.set()  # ends the heartbeat
            beat.join(timeout=5)
        return True

    def _run(self, services: Services, current: Current) -> None:
        job = current.job
        try:
            result = execute(services, job)
        except PerfdError as exc:
            self._failed(services, current, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # a bug: record it on the job, keep the daemon alive
            log.exception("job %d: internal error", job.id)
            self._failed(services, current, f"internal error: {exc!r}")
            return
        self._finished(services, current, result)

    def _finished(self, services: Services, current: Current, result: Executed) -> None:
        job = current.job
        for draft in result.follow_ups:
            follow, created = services.store.enqueue(draft)
            if created:
                log.info("job %d: queued job %d (%s)", job.id, follow.id, follow.kind)
        try:
            services.store.finish_job(job.id, self.owner, run_id=result.run_id, note=result.note)
        except ConflictError as exc:  # cancelled or re-claimed meanwhile
            log.warning("job %d finished but is no longer ours: %s", job.id, exc)
            return
        self.wake.set()  # its follow-ups are waiting
        log.info("job %d done: %s", job.id, result.note)

    def _failed(self, services: Services, current: Current, error: str) -> None:
        job = current.job
        try:
            after = services.store.fail_job(job.id, self.owner, error,
                                            retry_in_s=RETRY_BACKOFF_S * job.attempts)
        except ConflictError as exc:
            log.warning("job %d failed but is no longer ours: %s", job.id, exc)
            return
        log.error("job %d %s: %s", job.id,
                  "failed for good" if after.state == "FAILED" else "failed, will retry", error)

    def _heartbeat(self, services: Services, current: Current) -> None:
        settings = services.config.daemon.jobs
        while not current.lost.wait(settings.heartbeat_s):
            try:
                mine = services.store.heartbeat_job(current.job.id, self.owner, settings.lease_s)
            except PerfdError as exc:
                log.error("job %d heartbeat: %s", current.job.id, exc)
                continue
            if not mine:
                log.warning("job %d: lease lost (cancelled or claimed elsewhere)", current.job.id)
                current.lost.set()

    def abandon(self, reason: str) -> Job | None:
        """Put the job in hand back in the queue at once (the daemon is stopping); its run,
        if one was being measured, is marked interrupted at the next start."""
        current = self.current
        if current is None:
            return None
        try:
            return self.services().store.fail_job(current.job.id, self.owner,
                                                  f"abandoned: {reason}", retry_in_s=0.0)
        except PerfdError as exc:
            log.error("job %d: could not abandon: %s", current.job.id, exc)
            return None
