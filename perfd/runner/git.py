"""Git access: resolve commits and materialise them in worktrees, never touching the user's checkout."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

from perfd.errors import RepositoryError
from perfd.locks import file_lock

# A revision as a user may type it on the command line: a sha, a branch, a tag, HEAD~2.
# A leading '-' could be read by git as an option, so it is refused.
_REV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/~^@{}-]{0,199}$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_TRAILER_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
_URL = re.compile(r"^(https?|ssh|git|file)://|^[\w.-]+@[\w.-]+:")


def validate_rev(rev: str) -> str:
    """Return rev if it is a safe revision expression; raise RepositoryError otherwise."""
    if not _REV.match(rev) or ".." in rev:
        raise RepositoryError(
            f"{rev!r} is not a valid commit: use a commit id, a branch or a tag name"
        )
    return rev


def is_url(location: str) -> bool:
    return bool(_URL.match(location))


def _git(repo: Path, *args: str, timeout_s: float = 300) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        raise RepositoryError("git is not installed (needed to check out commits)") from None
    except subprocess.TimeoutExpired:
        raise RepositoryError(f"git {args[0]} in {repo} timed out after {timeout_s:.0f} s") from None
    if out.returncode != 0:
        raise RepositoryError(f"git {' '.join(args)} failed in {repo}: {out.stderr.strip()}")
    return out.stdout


class Repository:
    """A git repository perfd reads from: a local path, or a mirror of a URL in data_dir."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, location: str, mirrors_dir: Path) -> Repository:
        """Open a local repository, or clone/fetch a mirror of a URL under mirrors_dir."""
        if is_url(location):
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", location)[-100:]
            mirror = mirrors_dir / f"{name}.git"
            # Two perfd processes must not clone into or fetch the same mirror at once.
            with file_lock(mirrors_dir / f"{name}.lock"):
                if mirror.exists():
                    _git(mirror, "fetch", "--prune", "origin", timeout_s=1800)
                else:
                    _git(mirrors_dir, "clone", "--mirror", "--", location, str(mirror),
                         timeout_s=1800)
            return cls(mirror)
        path = Path(location)
        if not path.exists():
            raise RepositoryError(f"repository {location} does not exist")
        try:
            _git(path, "rev-parse", "--git-dir")
        except RepositoryError:
            raise RepositoryError(f"{location} is not a git repository") from None
        return cls(path)

    def resolve(self, rev: str) -> str:
        """Full 40-hex commit id of rev; RepositoryError if it names no commit here."""
        validate_rev(rev)
        try:
            sha = _git(self.path, "rev-parse", "--verify", "--quiet", "--end-of-options",
                       f"{rev}^{{commit}}").strip()
        except RepositoryError:
            sha = ""
        if not _SHA.match(sha):
            raise RepositoryError(f"commit {rev!r} does not exist in {self.path}")
        return sha

    def worktree(self, sha: str, dest: Path) -> Path:
        """Check out sha (detached) at dest as a git worktree; replaces a stale dest."""
        if not _SHA.match(sha):
            raise RepositoryError(f"internal: worktree needs a full commit id, got {sha!r}")
        if dest.exists():
            self.remove_worktree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _git(self.path, "worktree", "prune")
        _git(self.path, "worktree", "add", "--detach", "--force", str(dest), sha)
        return dest

    def remove_worktree(self, dest: Path) -> None:
        try:
            _git(self.path, "worktree", "remove", "--force", str(dest))
        except RepositoryError:
            shutil.rmtree(dest, ignore_errors=True)
            _git(self.path, "worktree", "prune")

    def commit_time(self, sha: str) -> datetime:
        """When the commit was made (committer date, aware UTC): a history's order, which
        a re-run measured later must not change."""
        return datetime.fromtimestamp(int(_git(self.path, "log", "-1", "--format=%ct", sha)), UTC)

    def subject(self, sha: str) -> str:
        """First line of the commit message."""
        return _git(self.path, "log", "-1", "--format=%s", sha).strip()

    def commits_between(self, base: str, head: str) -> list[tuple[str, str]]:
        """(sha, subject) of the commits in base..head, oldest first."""
        out = _git(self.path, "log", "--reverse", "--format=%H %s", f"{base}..{head}")
        return [(line[:40], line[41:]) for line in out.splitlines() if line]

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of two revisions (full id), None when they share no
        history (unrelated, or cut off by a shallow clone). Raises RepositoryError for a
        revision that is not valid."""
        validate_rev(a)
        validate_rev(b)
        try:
            sha = _git(self.path, "merge-base", "--end-of-options", a, b).strip()
        except RepositoryError:
            return None  # git merge-base exits 1 when there is no common ancestor
        return sha if _SHA.match(sha) else None

    def trailer_values(self, sha: str, key: str) -> list[str]:
        """Values of the ``key:`` trailers of a commit's message (git's trailer parsing), in
        order; blank ones left out. Raises RepositoryError for a sha or key that is not
        valid."""
        if not _SHA.match(sha):
            raise RepositoryError(f"internal: trailers need a full commit id, got {sha!r}")
        if not _TRAILER_KEY.match(key):
            raise RepositoryError(f"internal: {key!r} is not a trailer key")
        out = _git(self.path, "log", "-1",
                   f"--format=%(trailers:key={key},valueonly,unfold,separator=%x00)", sha)
        return [value.strip() for value in out.strip("\n").split("\0") if value.strip()]

    def first_parent_commits(self, base: str, head: str) -> list[tuple[str, str]]:
        """(sha, subject) of the commits on head's first-parent line after base, oldest first
        (what a bisection steps through: a merged branch is its merge commit). Both must be
        full commit ids; RepositoryError unless base is on that line."""
        for sha in (base, head):
            if not _SHA.match(sha):
                raise RepositoryError(f"internal: first_parent_commits needs full commit ids, "
                                      f"got {sha!r}")
        out = _git(self.path, "log", "--first-parent", "--reverse", "--format=%H%x00%P%x00%s",
                   f"{base}..{head}", "--")
        rows = [line.split("\0", 2) for line in out.splitlines() if line]
        if not rows or rows[0][1].split(" ")[0] != base:
            raise RepositoryError(
                f"{base[:12]} is not on the first-parent history of {head[:12]}: bisect from a "
                "commit of that line (e.g. their merge base)")
        return [(sha, subject) for sha, _parents, subject in rows]

    def is_ancestor(self, older: str, newer: str) -> bool:
        try:
            _git(self.path, "merge-base", "--is-ancestor", older, newer)
        except RepositoryError:
            return False
        return True

    def files_mentioning(self, rev: str, word: str, patterns: tuple[str, ...]) -> list[str]:
        """Paths at rev (matching the pathspec patterns) that contain word as a whole word."""
        try:
            out = _git(self.path, "grep", "-l", "-w", "-F", "-e", word, rev, "--", *patterns)
        except RepositoryError:
            return []  # git grep exits 1 when nothing matches
        return [line.split(":", 1)[1] for line in out.splitlines() if ":" in line]

    def files_at(self, rev: str) -> list[str]:
        """Every file path in rev's tree."""
        validate_rev(rev)
        return [p for p in _git(self.path, "ls-tree", "-r", "--name-only", "--end-of-options",
                                rev).splitlines() if p]

    def show_file(self, rev: str, path: str) -> str:
        return _git(self.path, "show", f"{rev}:{path}")

    def _log(self, base: str, head: str, *args: str) -> list[tuple[str, str]]:
        out = _git(self.path, "log", "--no-patch", "--format=%H %s", *args, f"{base}..{head}")
        return [(line[:40], line[41:]) for line in out.splitlines() if len(line) >= 40]

    def commits_touching_path(self, base: str, head: str, path: str) -> list[tuple[str, str]]:
        """Commits in base..head that changed the file at path, oldest first."""
        out = _git(self.path, "log", "--reverse", "--no-patch", "--format=%H %s",
                   f"{base}..{head}", "--", path)
        return [(line[:40], line[41:]) for line in out.splitlines() if len(line) >= 40]

    def commits_changing_lines_matching(self, base: str, head: str,
                                        regex: str) -> list[tuple[str, str]]:
        """Commits in base..head whose diff adds or removes a line matching regex (git log -G)."""
        return self._log(base, head, "-G", regex)


class RepositoryCache:
    """Opened repositories of one process: each URL's mirror is fetched once, not per flow."""

    def __init__(self, mirrors_dir: Path) -> None:
        self.mirrors_dir = mirrors_dir
        self._open: dict[str, Repository] = {}
        self._lock = threading.Lock()

    def get(self, location: str) -> Repository:
        """The repository at a path or URL (mirror cloned or fetched on first use). Raises
        RepositoryError."""
        with self._lock:
            repo = self._open.get(location)
            if repo is None:
                repo = self._open[location] = Repository.open(location, self.mirrors_dir)
            return repo

    def refresh(self, location: str) -> Repository:
        """Fetch again (the daemon's poller: new commits may have landed)."""
        with self._lock:
            self._open.pop(location, None)
        return self.get(location)
