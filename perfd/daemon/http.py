"""The daemon's HTTP port: /metrics, /healthz, /readyz, the JSON API and GitHub webhooks.

A WSGI application on Werkzeug (routing, requests, conditional responses), served by
waitress (a maintained, pure-Python, multi-threaded WSGI server): no HTTP parsing of our
own. It binds loopback unless the daemon file says otherwise.

- Reads (``GET /api/v1/...``) are open on the bound address; each answers with an ETag
  (a hash of the body) and honours If-None-Match (304). Lists take ``limit`` (1-500,
  default 50) and ``before`` (an id: the next page) and return ``{"items": [...],
  "next": URL-or-null}``.
- Writes (enqueue, cancel, alert state changes) need ``Authorization: Bearer <token>``; the
  token comes from the environment variable the daemon file names (``http.token_env``) and
  is compared in constant time. No token configured: writes are refused (403).
- ``POST /api/v1/hooks/github``: the body's HMAC-SHA256 must match X-Hub-Signature-256 for
  the configured secret (401 otherwise, nothing queued). A push queues the commit-tier jobs
  of every suite whose repository and tracked branch it names.
- Evidence: ``GET /api/v1/alerts/<id>/evidence/<file>`` serves a file of the alert's
  evidence directory (report.md, the flamegraph SVGs, the JSON diffs; by name, nothing
  outside it), and ``GET /api/v1/evidence?suite=&benchmark=&metric=`` redirects (303) to
  the report of that series' active alert: the link Alertmanager's notifications carry.
  ``GET /docs/alerts.md`` is the alert runbook the Prometheus rules link to.
- Commit ids from the API and webhooks must be hex commit ids (400 otherwise) before
  anything reaches git; unknown objects are 404, conflicts 409.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from perfd.context import Services
from perfd.daemon.triggers import SignatureError, check_signature, parse_push, suites_for_push
from perfd.errors import ConflictError, NotFoundError, PerfdError, RepositoryError, UsageError
from perfd.flows.alerts import TRANSITIONS, TransitionRequest, transition_alert
from perfd.flows.budgets import latest_history_run
from perfd.flows.jobs import EnqueueRequest, cancel_job, check_commit_id, enqueue, list_jobs
from perfd.model import NOT_HISTORY_TIERS
from perfd.records import JOB_STATES, Alert
from perfd.report.alerts import alert_json
from perfd.report.budgets import budget_dicts
from perfd.report.jobs import job_dict
from perfd.report.runs import run_dict
from perfd.store import SeriesKey

log = logging.getLogger("perfd.daemon.http")
MAX_PAGE = 500
MAX_BODY = 5 * 1024 * 1024  # webhook payloads of big pushes stay far below


@dataclass
class Health:
    """What /healthz and /readyz read: the main loop's last tick and whether the daemon is
    ready (config loaded, store reachable), kept by the daemon."""

    last_tick: float = 0.0  # time.monotonic() of the main loop's latest round
    tick_timeout_s: float = 10.0
    clock: Callable[[], float] = lambda: 0.0
    schedules: tuple[str, ...] = ()  # ids of the scheduler's jobs (tiers, poll)

    def alive(self) -> bool:
        return self.clock() - self.last_tick <= self.tick_timeout_s


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Api:
    """The WSGI application. ``services`` gives the current config snapshot; ``metrics``
    renders the Prometheus exposition; ``wake`` tells the worker a job was queued."""

    def __init__(self, services: Callable[[], Services], *, metrics: Callable[[], bytes],
                 health: Health, wake: Callable[[], None],
                 environ: Callable[[str], str | None] = os.environ.get) -> None:
        self.services = services
        self.metrics = metrics
        self.health = health
        self.wake = wake
        self.environ = environ
        self.url_map = Map([
            Rule("/healthz", endpoint="healthz", methods=["GET"]),
            Rule("/readyz", endpoint="readyz", methods=["GET"]),
            Rule("/metrics", endpoint="metrics", methods=["GET"]),
            Rule("/api/v1/runs", endpoint="runs", methods=["GET"]),
            Rule("/api/v1/runs/<int:run_id>", endpoint="run", methods=["GET"]),
            Rule("/api/v1/series", endpoint="series", methods=["GET"]),
            Rule("/api/v1/series/points", endpoint="points", methods=["GET"]),
            Rule("/api/v1/alerts", endpoint="alerts", methods=["GET"]),
            Rule("/api/v1/alerts/<int:alert_id>", endpoint="alert", methods=["GET"]),
            Rule("/api/v1/alerts/<int:alert_id>/<action>", endpoint="alert_action",
                 methods=["POST"]),
            Rule("/api/v1/alerts/<int:alert_id>/evidence/<name>", endpoint="evidence_file",
                 methods=["GET"]),
            Rule("/api/v1/evidence", endpoint="evidence", methods=["GET"]),
            Rule("/docs/<name>", endpoint="doc", methods=["GET"]),
            Rule("/api/v1/jobs", endpoint="jobs", methods=["GET"]),
            Rule("/api/v1/jobs", endpoint="enqueue", methods=["POST"]),
            Rule("/api/v1/jobs/<int:job_id>", endpoint="job", methods=["GET"]),
            Rule("/api/v1/jobs/<int:job_id>/cancel", endpoint="cancel", methods=["POST"]),
            Rule("/api/v1/budgets", endpoint="budgets", methods=["GET"]),
            Rule("/api/v1/hooks/github", endpoint="github", methods=["POST"]),
        ])

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY
        try:
            endpoint, args = self.url_map.bind_to_environ(environ).match()
            response = getattr(self, f"_{endpoint}")(request, **args)
        except HttpError as exc:
            response = _json({"error": str(exc)}, exc.status)
        except NotFoundError as exc:
            response = _json({"error": str(exc)}, 404)
        except ConflictError as exc:
            response = _json({"error": str(exc)}, 409)
        except (UsageError, RepositoryError) as exc:
            response = _json({"error": str(exc)}, 400)
        except HTTPException as exc:  # no such route or method
            response = _json({"error": exc.description or exc.name}, exc.code or 500)
        except PerfdError as exc:
            log.error("%s %s: %s", request.method, request.path, exc)
            response = _json({"error": str(exc)}, 503)
        except Exception:
            log.exception("%s %s", request.method, request.path)
            response = _json({"error": "internal error (see the daemon's log)"}, 500)
        return response(environ, start_response)

    # -- health and metrics

    def _healthz(self, request: Request) -> Response:
        if not self.health.alive():
            return _json({"status": "stalled: the main loop stopped answering"}, 503)
        return _json({"status": "ok"})

    def _readyz(self, request: Request) -> Response:
        services = self.services()
        with services.store.reading() as r:  # raises StorageError -> 503
            stats = r.queue_stats(services.machine_id)
        return _json({"status": "ready", "machine_id": services.machine_id,
                      "queued": stats.by_state.get("QUEUED", 0),
                      "schedules": list(self.health.schedules)})

    def _metrics(self, request: Request) -> Response:
        return Response(self.metrics(), content_type="text/plain; version=0.0.4; charset=utf-8")

    # -- reads

    def _runs(self, request: Request) -> Response:
        limit, before = _page(request)
        services = self.services()
        with services.store.reading() as r:
            runs = r.list_runs(suite=request.args.get("suite"),
                               commit=request.args.get("commit"),
                               status=request.args.get("status"), limit=limit,
                               before_id=before)
        items = [{"id": x.id, "suite": x.suite, "commit": x.commit_sha,
                  "machine_id": x.machine_id, "status": x.status.value, "tier": x.tier,
                  "started_at": x.started_at.isoformat(),
                  "finished_at": x.finished_at.isoformat() if x.finished_at else None,
                  "error": x.error, "benchmarks": x.n_benchmarks} for x in runs]
        return _listing(request, items, [x.id for x in runs], limit)

    def _run(self, request: Request, run_id: int) -> Response:
        services = self.services()
        with services.store.reading() as r:
            detail = r.get_run(run_id)
            budgets = r.budget_results(run_id)
        return _cached(request, {**run_dict(detail), "budgets": budget_dicts(budgets)})

    def _series(self, request: Request) -> Response:
        services = self.services()
        with services.store.reading() as r:
            keys = r.series_keys(suite=request.args.get("suite"),
                                 machine_id=request.args.get("machine_id") or services.machine_id)
        return _cached(request, {"items": [
            {"suite": k.suite, "benchmark": k.benchmark, "metric": k.metric,
             "machine_id": k.machine_id, "config_hash": k.config_hash} for k in keys]})

    def _points(self, request: Request) -> Response:
        services = self.services()
        args = request.args
        missing = [n for n in ("suite", "benchmark", "metric", "config_hash") if not args.get(n)]
        if missing:
            raise HttpError(400, f"series/points needs {', '.join(missing)} (see /api/v1/series)")
        key = SeriesKey(args["suite"], args["benchmark"], args["metric"],
                        args.get("machine_id") or services.machine_id, args["config_hash"])
        with services.store.reading() as r:
            points = r.series_points(key, exclude_tiers=NOT_HISTORY_TIERS)
            ratios = r.ratios_for_runs([p.run_id for p in points], key.benchmark, key.metric)
        limit, _ = _page(request)
        return _cached(request, {"items": [
            {"run_id": p.run_id, "commit": p.commit_sha, "started_at": p.started_at.isoformat(),
             "median": p.median, "cv": p.cv, "processes": p.n_processes,
             "reference_ratio": ratios[p.run_id].ratio if p.run_id in ratios else None}
            for p in points[-limit:]]})

    def _alerts(self, request: Request) -> Response:
        limit, _ = _page(request)
        services = self.services()
        states = request.args.getlist("state") or None
        with services.store.reading() as r:
            found = r.list_alerts(state=states, suite=request.args.get("suite"), limit=limit)
        return _cached(request, {"items": [alert_json(a) for a in found]})

    def _alert(self, request: Request, alert_id: int) -> Response:
        services = self.services()
        with services.store.reading() as r:
            alert, events = r.get_alert(alert_id)
        files = [f"/api/v1/alerts/{alert_id}/evidence/{p.name}" for p in _evidence_files(alert)]
        return _cached(request, {**alert_json(alert), "evidence_files": files, "events": [
            {"at": e.at.isoformat(), "actor": e.actor, "from": e.from_state, "to": e.to_state,
             "reason": e.reason} for e in events]})

    def _evidence_file(self, request: Request, alert_id: int, name: str) -> Response:
        """One file of an alert's evidence directory (its report, flamegraphs, diffs)."""
        with self.services().store.reading() as r:
            alert, _ = r.get_alert(alert_id)
        found = {p.name: p for p in _evidence_files(alert)}
        if name not in found:
            raise NotFoundError(f"alert {alert_id} has no evidence file {name!r}")
        path = found[name]
        response = Response(path.read_bytes(), content_type=_EVIDENCE_TYPES[path.suffix])
        # a flamegraph SVG runs its own inline script (zoom, search); nothing loads from elsewhere
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
            if path.suffix == ".svg" else "default-src 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.set_etag(hashlib.sha256(response.get_data()).hexdigest()[:32])
        return response.make_conditional(request)

    def _doc(self, request: Request, name: str) -> Response:
        """An operator document (docs/*.md: the alert runbook that alert rules link to)."""
        found = {p.name: p for p in docs_dir().glob("*.md")}
        if name not in found:
            raise NotFoundError(f"no document {name!r}")
        response = Response(found[name].read_bytes(), content_type="text/markdown; charset=utf-8")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def _evidence(self, request: Request) -> Response:
        """The evidence of a series' active alert, by its labels (what Alertmanager's
        notifications link to): 303 to its report, or to the alert when it has none yet."""
        services = self.services()
        want = {k: request.args.get(k) for k in ("suite", "benchmark", "metric")}
        if not want["suite"] or want["metric"] is None:
            raise HttpError(400, "suite and metric are needed (benchmark too, but for a "
                                 "machine-wide alert)")
        with services.store.reading() as r:
            active = r.active_alerts(suite=want["suite"], machine_id=services.machine_id)
        matching = sorted((a for key, a in active.items()
                           if (key.benchmark or "") == (want["benchmark"] or "")
                           and key.metric == want["metric"]), key=lambda a: a.id)
        if not matching:
            raise NotFoundError(f"no active alert on {want['suite']} {want['benchmark'] or '-'} "
                                f"{want['metric']} on machine {services.machine_id}")
        alert = matching[-1]
        target = f"/api/v1/alerts/{alert.id}"
        if any(p.name == "report.md" for p in _evidence_files(alert)):
            target += "/evidence/report.md"
        return redirect(target, 303)

    def _jobs(self, request: Request) -> Response:
        limit, before = _page(request)
        states = request.args.getlist("state") or None
        if states and not set(states) <= set(JOB_STATES):
            raise HttpError(400, f"state: one of {', '.join(JOB_STATES)}")
        found = list_jobs(self.services(), states=states, suite=request.args.get("suite"),
                          limit=limit, before_id=before)
        return _listing(request, [job_dict(j) for j in found], [j.id for j in found], limit)

    def _job(self, request: Request, job_id: int) -> Response:
        services = self.services()
        with services.store.reading() as r:
            return _cached(request, job_dict(r.get_job(job_id)))

    def _budgets(self, request: Request) -> Response:
        services = self.services()
        suite = request.args.get("suite")
        out = []
        with services.store.reading() as r:
            names = [suite] if suite else sorted(services.config.suites)
            for name in names:
                latest = latest_history_run(r, name, services.machine_id)
                if latest is not None:
                    out.append({"suite": name, "run_id": latest.id, "commit": latest.commit_sha,
                                "budgets": budget_dicts(r.budget_results(latest.id))})
        return _cached(request, {"items": out})

    # -- writes

    def _authorize(self, request: Request) -> str:
        """The actor of a write: checks the bearer token (401/403)."""
        env = self.services().config.daemon.http.token_env
        token = self.environ(env)
        if not token:
            raise HttpError(403, f"writes are disabled: no API token is configured (${env})")
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            raise HttpError(401, "a write needs Authorization: Bearer <token>")
        return request.headers.get("X-Perfd-Actor", "api")[:100] or "api"

    def _enqueue(self, request: Request) -> Response:
        actor = self._authorize(request)
        body = _body(request)
        commit = check_commit_id(body.get("commit"))
        suite, tier = body.get("suite"), body.get("tier", "commit")
        if not isinstance(suite, str) or not isinstance(tier, str):
            raise HttpError(400, "enqueue needs suite and commit (and optionally tier)")
        branch = body.get("branch")
        done = enqueue(self.services(), EnqueueRequest(
            suite=suite, commit=commit, tier=tier,
            branch=branch if isinstance(branch, str) else None, requested_by=actor))
        self.wake()
        return _json({**job_dict(done.job), "created": done.created,
                      "skipped": list(done.skipped)}, 201 if done.created else 200)

    def _cancel(self, request: Request, job_id: int) -> Response:
        actor = self._authorize(request)
        reason = _body(request, required=False).get("reason") or "cancelled through the API"
        return _json(job_dict(cancel_job(self.services(), job_id, actor, str(reason))))

    def _alert_action(self, request: Request, alert_id: int, action: str) -> Response:
        actor = self._authorize(request)
        if action not in TRANSITIONS:
            raise HttpError(404, f"no alert action {action!r}: one of {', '.join(TRANSITIONS)}")
        body = _body(request, required=False)
        parent = body.get("parent_alert_id")
        alert = transition_alert(self.services(), TransitionRequest(
            alert_id, TRANSITIONS[action], actor=actor, reason=str(body.get("reason") or ""),
            parent_alert_id=parent if isinstance(parent, int) else None))
        return _json(alert_json(alert))

    def _github(self, request: Request) -> Response:
        services = self.services()
        raw = request.get_data(cache=True)
        try:
            check_signature(self.environ(services.config.daemon.http.webhook_secret_env), raw,
                            request.headers.get("X-Hub-Signature-256"))
        except SignatureError as exc:
            raise HttpError(401, str(exc)) from None
        event = request.headers.get("X-GitHub-Event", "")
        if event == "ping":
            return _json({"status": "pong"})
        if event != "push":
            return _json({"status": f"ignored: {event or 'no'} event"}, 202)
        push = parse_push(_body(request))
        if push is None:
            return _json({"status": "ignored: not a branch push"}, 202)
        queued = []
        for suite in suites_for_push(services.config, push):
            services.repos.refresh(suite.repository_location())  # the pushed commits
            for sha in push.commits:
                done = enqueue(services, EnqueueRequest(suite.name, sha, "commit",
                                                        branch=push.branch, requested_by="webhook"))
                queued.append(job_dict(done.job))
        if queued:
            self.wake()
        return _json({"status": "queued" if queued else "no suite tracks this branch",
                      "jobs": queued}, 202)


_EVIDENCE_TYPES = {".md": "text/markdown; charset=utf-8", ".svg": "image/svg+xml",
                   ".json": "application/json", ".folded": "text/plain; charset=utf-8",
                   ".txt": "text/plain; charset=utf-8"}


def docs_dir() -> Path:
    """Where perfd's operator docs are: shipped as perfd/_docs, or docs/ of a checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_docs", package.parent / "docs"):
        if (candidate / "alerts.md").is_file():
            return candidate
    return package.parent / "docs"


def _evidence_files(alert: Alert) -> list[Path]:
    """The files of the alert's evidence directory that the API serves (by name only:
    nothing outside the directory, no subdirectories)."""
    if not alert.evidence_path:
        return []
    folder = Path(alert.evidence_path)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.is_symlink() and p.suffix in _EVIDENCE_TYPES)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str, indent=1) + "\n", status=status,
                    content_type="application/json")


def _cached(request: Request, data: Any) -> Response:
    """A read: with its ETag, and 304 when the client already has this body."""
    response = _json(data)
    response.set_etag(hashlib.sha256(response.get_data()).hexdigest()[:32])
    return response.make_conditional(request)


def _listing(request: Request, items: list[dict[str, Any]], ids: list[int],
             limit: int) -> Response:
    following = None
    if len(items) == limit and ids:
        args = {k: v for k, v in request.args.items(multi=True) if k != "before"}
        following = f"{request.path}?{urlencode([*args.items(), ('before', min(ids))])}"
    return _cached(request, {"items": items, "next": following})


def _page(request: Request) -> tuple[int, int | None]:
    try:
        limit = int(request.args.get("limit", 50))
        before = request.args.get("before")
        before_id = int(before) if before is not None else None
    except ValueError:
        raise HttpError(400, "limit and before must be integers") from None
    if not 1 <= limit <= MAX_PAGE:
        raise HttpError(400, f"limit must be 1..{MAX_PAGE}")
    return limit, before_id


def _body(request: Request, *, required: bool = True) -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw and not required:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the body must be a JSON object")
    return data
