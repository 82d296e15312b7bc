"""One validated, immutable snapshot of perfd's configuration: the daemon file, suites, budgets.

``load_config_set`` reads the daemon file (or takes the defaults), every suite file of its
suites directory and its budgets file, and checks them as one set with the same logical pass
as ``perfd check-config``. It returns a ``ConfigSet`` only when every file is valid, so a
daemon hot reload can build the new snapshot first and swap it in whole, or keep the old one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pydantic import ValidationError

from perfd.config.loader import (
    YAML_SUFFIXES,
    Document,
    Kind,
    Problem,
    check_daemon,
    check_set,
    is_suite_path,
    load_suite,
    raise_problems,
    read_document,
    sort_problems,
    unknown_suite_error,
    wrong_kind,
    yaml_files,
)
from perfd.config.models import BudgetsConfig, DaemonConfig, SuiteConfig

__all__ = ["ConfigSet", "SourceFile", "load_config_set"]


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file a ConfigSet was read from and the SHA-256 (hex) of the bytes that were parsed."""

    path: Path  # absolute
    sha256: str

    @classmethod
    def read(cls, path: Path) -> SourceFile | None:
        """The file at ``path`` as it is now; None when it cannot be read."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return cls(path.absolute(), hashlib.sha256(data).hexdigest())


@dataclass(frozen=True, slots=True)
class ConfigSet:
    """The daemon file, its suites (read-only, by name) and budgets (None: no file), all valid."""

    daemon: DaemonConfig
    suites: Mapping[str, SuiteConfig]
    budgets: BudgetsConfig | None
    sources: tuple[SourceFile, ...] = ()

    def __post_init__(self) -> None:
        misnamed = [key for key, suite in self.suites.items() if key != suite.name]
        if misnamed:
            raise ValueError(
                f"ConfigSet.suites must be keyed by suite name; key '{misnamed[0]}' holds "
                f"suite '{self.suites[misnamed[0]].name}'"
            )
        # A private copy behind a read-only view: neither the caller's dict nor a holder of
        # the snapshot can change the suites afterwards.
        object.__setattr__(self, "suites", MappingProxyType(dict(self.suites)))
        object.__setattr__(self, "sources", tuple(self.sources))

    @property
    def machine_id(self) -> str:
        """This machine's id (the daemon file's, or the sanitised hostname)."""
        return self.daemon.machine_id_resolved()

    @property
    def data_dir(self) -> Path:
        """The data directory (database, builds, evidence)."""
        return self.daemon.data_dir_resolved()

    @property
    def storage_url(self) -> str:
        """The SQLAlchemy URL of the result store."""
        return self.daemon.storage_url_resolved()

    @property
    def suites_dir(self) -> Path:
        """The directory the suites were read from (it may not exist)."""
        return self.daemon.suites_dir_resolved()

    @property
    def budgets_path(self) -> Path:
        """The budgets file (it may not exist; then ``budgets`` is None)."""
        return self.daemon.budgets_resolved()

    def suite(self, name_or_path: str | Path) -> SuiteConfig:
        """A suite by name (file name first, then ``name:``) or by file path; raises ConfigError.

        Same rules and messages as ``find_suite``: a path into the suites directory gives the
        snapshot's suite, a path elsewhere is loaded and validated on its own.
        """
        if is_suite_path(name_or_path):
            path = Path(str(name_or_path))
            for suite in self.suites.values():
                if suite.source_path is not None and _same_file(suite.source_path, path):
                    return suite
            return load_suite(path)
        name = str(name_or_path)
        by_file_name = {
            suite.source_path.name: suite
            for suite in self.suites.values()
            if suite.source_path is not None
        }
        for suffix in YAML_SUFFIXES:
            if (found := by_file_name.get(f"{name}{suffix}")) is not None:
                return found
        if name in self.suites:
            return self.suites[name]
        raise unknown_suite_error(name, self.suites, self.suites_dir)

    def changed(self) -> bool:
        """True when a source file was edited or removed, a suite file added or budgets created."""
        if any(SourceFile.read(source.path) != source for source in self.sources):
            return True
        read = {source.path for source in self.sources}
        try:
            if self.suites_dir.is_dir() and any(
                file.absolute() not in read for file in yaml_files(self.suites_dir)
            ):
                return True
        except OSError:  # the directory went away while it was listed
            return True
        return self.budgets is None and self.budgets_path.exists()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


@dataclass
class _Reading:
    """The files read for one ConfigSet: their problems by file shown, in order, and digests."""

    problems: dict[str, list[Problem]] = field(default_factory=dict)
    sources: list[SourceFile] = field(default_factory=list)

    def add(self, file: str, problems: list[Problem]) -> None:
        self.problems.setdefault(file, []).extend(problems)

    def read(self, path: Path, kind: Kind, file: str | None = None) -> Document | None:
        """The document at ``path`` when it parses as a file of ``kind``, else None."""
        doc, problems = read_document(path, file)
        self.add(file if file is not None else str(path), problems)
        if doc is None:
            return None
        self.sources.append(SourceFile(doc.path.absolute(), doc.digest))
        other_kind = wrong_kind(doc, kind)
        self.add(doc.file, other_kind)
        return None if other_kind else doc

    def all_problems(self) -> list[Problem]:
        return [p for problems in self.problems.values() for p in sort_problems(problems)]


def _paths_of_invalid_daemon(doc: Document, hostname: str | None) -> tuple[Path | None, Path | None]:
    """suites_dir and budgets of a daemon file with problems, each None when it is one of them."""
    context = {"base_dir": doc.path.absolute().parent, "hostname": hostname}
    found: list[Path | None] = []
    for key in ("suites_dir", "budgets"):
        data = {key: doc.data[key]} if key in doc.data else {}
        try:
            found.append(getattr(DaemonConfig.model_validate(data, context=context), key))
        except ValidationError:
            found.append(None)
    return found[0], found[1]


def load_config_set(
    daemon_path: Path | None, *, cwd: Path, hostname: str | None = None
) -> ConfigSet:
    """Load the daemon file (None: defaults under ``cwd``), its suites and budgets as one set.

    Every problem of every file is reported in one ConfigError as ``file:line: path:
    message``: each file's YAML and schema problems, then the logical pass across files
    (duplicate suite names, budgets naming unknown suites, benchmarks or metrics). A relative
    ``daemon_path`` is read against ``cwd``; ``hostname`` stands in for this host's name.
    """
    cwd = Path(cwd)
    reading = _Reading()
    daemon: DaemonConfig | None = None
    daemon_doc: Document | None = None
    suites_dir: Path | None = None
    budgets_path: Path | None = None
    if daemon_path is None:
        daemon = DaemonConfig.default(cwd, hostname=hostname)
        suites_dir, budgets_path = daemon.suites_dir, daemon.budgets
        label = f"configuration in {cwd}"
    else:
        label = f"configuration from {daemon_path}"
        path = daemon_path if daemon_path.is_absolute() else cwd / daemon_path
        daemon_doc = reading.read(path, "daemon", str(daemon_path))
        if daemon_doc is not None:
            daemon, problems = check_daemon(daemon_doc, hostname)
            reading.add(daemon_doc.file, problems)
            if daemon is not None:
                suites_dir, budgets_path = daemon.suites_dir, daemon.budgets
            else:
                # Still check the suites and budgets where the file can be understood.
                suites_dir, budgets_path = _paths_of_invalid_daemon(daemon_doc, hostname)

    suite_docs: list[Document] = []
    if suites_dir is not None and suites_dir.is_dir():
        # A budgets or daemon file kept in the suites directory is read as what it is.
        others = {p.resolve() for p in (budgets_path, daemon_doc and daemon_doc.path) if p}
        for file in yaml_files(suites_dir):
            if file.resolve() in others:
                continue
            if (doc := reading.read(file, "suite")) is not None:
                suite_docs.append(doc)
    elif suites_dir is not None and suites_dir.exists():
        if daemon_doc is not None and "suites_dir" in daemon_doc.data:
            message = f"{suites_dir} is not a directory"
            reading.add(daemon_doc.file, [daemon_doc.problem(("suites_dir",), message)])
        else:
            message = "is not a directory; expected the directory of suite files"
            reading.add(str(suites_dir), [Problem(str(suites_dir), None, "", message)])

    budget_docs: list[Document] = []
    if budgets_path is not None and budgets_path.exists():
        doc = reading.read(budgets_path, "budgets")
        budget_docs += [doc] if doc is not None else []

    checked = check_set(suite_docs, budget_docs)
    for shown, problems in checked.problems.items():
        reading.add(shown, problems)
    problems = reading.all_problems()
    if problems or daemon is None:
        raise_problems(label, problems)
    budgets = checked.budgets[budget_docs[0].file] if budget_docs else None
    return ConfigSet(daemon, checked.suites, budgets, tuple(reading.sources))
