"""References: the build every history run of a suite is measured against, in lock-step pairs.

A suite's reference for a branch is a commit (typically the last release), set explicitly
with who and why and never moved implicitly. History runs run each benchmark in lock-step
pairs with the reference build, so each run's value is its ratio to the reference measured
in the same seconds on the same CPU: whatever the host does to both sides cancels.

Moving the reference measures the new one against the previous one in a long lock-step
paired run (``link_pairs`` pairs) and stores, per benchmark x metric, the link factor
new/previous with its CI, in the same transaction as the new reference. A ratio series then
carries the runs measured against the previous reference over by that factor and says where
it was re-anchored (:func:`perfd.flows.history.ratio_series`). A run against an older
reference with no link for its benchmark x metric (``--no-link``, or a benchmark added since)
is left out of the series instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfd.config import SuiteConfig
from perfd.context import Services
from perfd.errors import HarnessError, UsageError
from perfd.events import RunContended
from perfd.flows.run import paired_ratios, run_options
from perfd.model import RunTier
from perfd.records import LinkMeasure, LinkRecord, ReferenceRecord
from perfd.runner.git import Repository
from perfd.runner.pipeline import run_interleaved


@dataclass(frozen=True, slots=True)
class SetReference:
    suite: str
    rev: str  # tag, commit or branch name: resolved to a commit now, and kept as typed
    set_by: str
    reason: str
    branch: str | None = None  # default: the suite's first tracked branch
    repository: str | None = None
    link: bool = True  # measure the new reference against the previous one
    link_pairs: int = 20  # pairs of that run
    retries: int = 2  # measure the link again while it comes out CONTENDED
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.link_pairs < 5 or self.retries < 0:
            raise UsageError(f"a link needs at least 5 pairs and retries >= 0, got "
                             f"{self.link_pairs} and {self.retries}")


@dataclass(frozen=True, slots=True)
class ReferenceSet:
    reference: ReferenceRecord
    previous: ReferenceRecord | None  # the reference it replaced
    links: tuple[LinkRecord, ...]  # new/previous per benchmark x metric (none: not linked)


def set_reference(services: Services, request: SetReference) -> ReferenceSet:
    """Resolve ``rev`` and record it as the suite's reference for the branch; when it replaces
    another commit, first measure the link between the two (module docstring). Raises
    ConfigError, RepositoryError, UsageError (blank reason or actor), BuildError,
    HarnessError (also: the link stayed CONTENDED), ConflictError (the reference moved
    meanwhile), StorageError, MachineBusyError."""
    suite = services.suite(request.suite)
    repo = services.repository(suite, request.repository)
    sha = repo.resolve(request.rev)
    branch = request.branch or suite.branches[0]
    previous = services.store.current_reference(suite.name, branch)
    measures: list[LinkMeasure] = []
    if request.link and previous is not None and previous.commit_sha != sha:
        measures = _measure_link(services, suite, repo, previous, sha, request)
    ref = services.store.set_reference(
        suite.name, branch, request.rev, sha, set_by=request.set_by, reason=request.reason,
        links=measures, previous_reference_id=previous.id if measures and previous else None)
    links = tuple(link for link in services.store.list_links(suite.name)
                  if link.reference_id == ref.id)
    return ReferenceSet(ref, previous, links)


def _measure_link(services: Services, suite: SuiteConfig, repo: Repository,
                  previous: ReferenceRecord, sha: str, request: SetReference) -> list[LinkMeasure]:
    """The new reference against the previous one in ``link_pairs`` lock-step pairs, both
    sides stored as reference runs; measured again while CONTENDED."""
    # sized like a compare (the suite defaults); both sides are stored as reference runs
    options = run_options(services, tier=RunTier.COMPARE, seed=request.seed)
    with services.machine.hold(f"linking the reference of suite {suite.name} to {sha[:12]}"):
        for attempt in range(1, request.retries + 2):
            both = run_interleaved(suite, repo, services.builder, previous.commit_sha, sha,
                                   services.store, options, keep_going=lambda *_: False,
                                   min_pairs=request.link_pairs, max_pairs=request.link_pairs,
                                   tiers=(RunTier.REFERENCE, RunTier.REFERENCE))
            if not both.current.contended:
                return [LinkMeasure(r.benchmark, r.metric, r.ratio, r.ci[0], r.ci[1],
                                    len(r.pair_ratios), r.pair_ratios, both.baseline.run_id,
                                    both.current.run_id)
                        for r in paired_ratios(suite, both, options)]
            if attempt <= request.retries:
                services.events(RunContended(both.current.run_id,
                                             both.current.contended_reason or "", attempt,
                                             request.retries + 1, 0.0))
    raise HarnessError(
        f"the link of the reference of {suite.name} to {sha[:12]} stayed CONTENDED "
        f"({both.current.contended_reason}): the reference was not moved; try again when the "
        "machine is quiet, or --no-link (earlier runs then leave the series)")


def current_reference(services: Services, suite_name: str,
                      branch: str | None = None) -> ReferenceRecord | None:
    """The suite's reference for the branch (default: its first tracked branch), if any."""
    suite = services.suite(suite_name)
    return services.store.current_reference(suite.name, branch or suite.branches[0])


def list_references(services: Services, suite_name: str | None = None) -> list[ReferenceRecord]:
    """Every reference ever set (newest first), of one suite or all."""
    return services.store.list_references(suite_name)
