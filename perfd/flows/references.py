"""References: the build every history run of a suite is measured against, in lock-step pairs.

A suite's reference for a branch is a commit (typically the last release), set explicitly
with who and why and never moved implicitly. History runs run each benchmark in lock-step
pairs with the reference build, so each run's value is its ratio to the reference measured
in the same seconds on the same CPU: whatever the host does to both sides cancels.

A series is only ever a ratio series against one reference: when the reference moves, the
ratios before and after are not compared with each other (the history says where it was
re-anchored). Linking references through a measured factor is not done yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfd.context import Services
from perfd.records import ReferenceRecord


@dataclass(frozen=True, slots=True)
class SetReference:
    suite: str
    rev: str  # tag, commit or branch name: resolved to a commit now, and kept as typed
    set_by: str
    reason: str
    branch: str | None = None  # default: the suite's first tracked branch
    repository: str | None = None


def set_reference(services: Services, request: SetReference) -> ReferenceRecord:
    """Resolve ``rev`` and record it as the suite's reference for the branch. Raises
    ConfigError, RepositoryError, UsageError (blank reason or actor), StorageError."""
    suite = services.suite(request.suite)
    sha = services.repository(suite, request.repository).resolve(request.rev)
    return services.store.set_reference(
        suite.name, request.branch or suite.branches[0], request.rev, sha,
        set_by=request.set_by, reason=request.reason)


def current_reference(services: Services, suite_name: str,
                      branch: str | None = None) -> ReferenceRecord | None:
    """The suite's reference for the branch (default: its first tracked branch), if any."""
    suite = services.suite(suite_name)
    return services.store.current_reference(suite.name, branch or suite.branches[0])


def list_references(services: Services, suite_name: str | None = None) -> list[ReferenceRecord]:
    """Every reference ever set (newest first), of one suite or all."""
    return services.store.list_references(suite_name)
