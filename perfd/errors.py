"""Exceptions that carry a clear message and an exit code.

Only ``perfd.cli`` turns these into exit codes; everything else raises them. A performance
regression is a *result*, never an exception.

Exit codes (also in ``perfd --help`` and the README):

    0   success
    1   the command's verdict is negative (regression found, gate failed)
    2   usage or configuration error (bad YAML, unknown key, wrong type, bad reference)
    3   repository error (not a git repository, unknown commit, checkout failed)
    4   build failed (a build step failed, timed out or its tool is missing)
    5   benchmark run failed (harness crashed, hung, printed garbage or an unknown format)
    6   storage error (database locked, unwritable, or at an unknown schema version)
    7   machine busy (another perfd process is benchmarking on this machine; --no-wait)
    70  internal error (a bug in perfd: please report it)
    130 interrupted (Ctrl-C / SIGINT)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_CONFIG = 2
EXIT_REPOSITORY = 3
EXIT_BUILD = 4
EXIT_RUN = 5
EXIT_STORAGE = 6
EXIT_BUSY = 7
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class PerfdError(Exception):
    """Base class: ``str(err)`` is the message shown to people, ``exit_code`` the status."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(PerfdError):
    """Invalid YAML or configuration; ``problems`` lists every ``file:line: path: message``."""

    exit_code = EXIT_CONFIG

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(message)


class UsageError(PerfdError):
    """A command line that cannot be carried out as given."""

    exit_code = EXIT_CONFIG


class NotFoundError(UsageError):
    """A run, alert, job or other stored object that does not exist (HTTP 404; exit 2)."""


class ConflictError(UsageError):
    """A request that contradicts the stored state, e.g. a second active alert on a series or
    a lifecycle move from a closed state (HTTP 409; exit 2)."""


class RepositoryError(PerfdError):
    """The repository or commit cannot be used."""

    exit_code = EXIT_REPOSITORY


class BuildError(PerfdError):
    """A build step failed, timed out, or its program does not exist."""

    exit_code = EXIT_BUILD


class HarnessError(PerfdError):
    """A harness process crashed, hung, printed garbage or an unsupported format."""

    exit_code = EXIT_RUN


class StorageError(PerfdError):
    """The database cannot be read or written (locked, read-only, wrong schema version)."""

    exit_code = EXIT_STORAGE


class EvidenceError(PerfdError):
    """Evidence could not be collected (profiler missing or not permitted, empty profile)."""

    exit_code = EXIT_RUN


class MachineBusyError(PerfdError):
    """Another perfd process holds the machine lock and the caller asked not to wait."""

    exit_code = EXIT_BUSY
