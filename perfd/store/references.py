"""Reference builds and ratios in SQL: which build each suite x branch is measured against,
each run's current/reference ratios, and the links between successive references.

Setting a reference appends a row (who, when, why), so its history stays; the current
reference of a suite x branch is the newest row. A new reference can be stored with its
links to the one it replaces (new/previous factors), so ratio series continue across it.
Functions here take a ``Connection`` inside the caller's transaction; ``ResultStore`` and
``Reader`` wrap them with their error handling and clock. An unknown run or reference is a
``NotFoundError``; a ratio or link stored twice, or a reference that moved since its link
was measured, a ``ConflictError``; other bad arguments a ``UsageError`` (a malformed sha a
``ValueError``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, RowMapping, Table, insert, select

from perfd.errors import ConflictError, NotFoundError, UsageError
from perfd.records import LinkMeasure, LinkRecord, RatioRecord, ReferenceRecord, check_sha
from perfd.store import tables as t

# ----------------------------------------------------------------------------- references


def insert_reference(
    conn: Connection,
    suite: str,
    branch: str,
    rev: str,
    commit_sha: str,
    set_by: str,
    reason: str,
    now: datetime,
    *,
    links: Sequence[LinkMeasure] = (),
    previous_reference_id: int | None = None,
) -> int:
    """Record ``commit_sha`` (typed as ``rev``) as the reference of suite x branch, with
    ``links`` (how it measured against reference ``previous_reference_id``, the current one),
    all or nothing; returns the new row's id. Raises ValueError for a malformed sha,
    UsageError for blank fields or links without previous_reference_id, ConflictError when
    the current reference is no longer previous_reference_id or a link is given twice,
    NotFoundError for an unknown run of a link."""
    for name, value in (("suite", suite), ("branch", branch), ("rev", rev)):
        if not value.strip():
            raise UsageError(f"a reference needs a {name}")
    check_sha(commit_sha, "reference.commit_sha")
    if not set_by.strip():
        raise UsageError("setting a reference needs an actor (who set it)")
    if not reason.strip():
        raise UsageError(f"setting the reference of {suite} on {branch} needs a reason")
    if links and previous_reference_id is None:
        raise UsageError(
            f"links of the new reference of {suite} on {branch} need the previous reference's id"
        )
    if previous_reference_id is not None:
        _require_current(conn, suite, branch, previous_reference_id)
    keys = [(link.benchmark, link.metric) for link in links]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ConflictError(f"link of {twice[0]}/{twice[1]} given twice")
    run_ids = {run_id for link in links for run_id in (link.previous_run_id, link.reference_run_id)
               if run_id is not None}
    if run_ids:
        _require_ids(conn, t.benchmark_runs, "run", run_ids)
    reference_id = int(
        conn.execute(
            insert(t.suite_references)
            .values(suite=suite, branch=branch, rev=rev, commit_sha=commit_sha, set_at=now,
                    set_by=set_by, reason=reason)
            .returning(t.suite_references.c.id)
        ).scalar_one()
    )
    if links:
        conn.execute(
            insert(t.reference_links),
            [
                {
                    "reference_id": reference_id,
                    "previous_reference_id": previous_reference_id,
                    "benchmark": link.benchmark,
                    "metric": link.metric,
                    "factor": link.factor,
                    "ci_low": link.ci_low,
                    "ci_high": link.ci_high,
                    "n_pairs": link.n_pairs,
                    "pair_ratios": json.dumps(list(link.pair_ratios)),  # floats by repr
                    "previous_run_id": link.previous_run_id,
                    "reference_run_id": link.reference_run_id,
                }
                for link in links
            ],
        )
    return reference_id


def current_reference(conn: Connection, suite: str, branch: str) -> ReferenceRecord | None:
    """The newest reference of suite x branch; None if none was ever set."""
    refs = t.suite_references
    row = conn.execute(
        select(refs)
        .where(refs.c.suite == suite, refs.c.branch == branch)
        .order_by(refs.c.id.desc())
        .limit(1)
    ).mappings().one_or_none()
    return None if row is None else _reference(row)


def read_reference(conn: Connection, reference_id: int) -> ReferenceRecord:
    """One reference setting by id. Raises NotFoundError for an unknown id."""
    refs = t.suite_references
    row = conn.execute(select(refs).where(refs.c.id == reference_id)).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"no reference with id {reference_id}")
    return _reference(row)


def list_references(conn: Connection, suite: str | None) -> list[ReferenceRecord]:
    """Every reference setting (of one suite, or all), newest first."""
    refs = t.suite_references
    query = select(refs).order_by(refs.c.id.desc())
    if suite is not None:
        query = query.where(refs.c.suite == suite)
    return [_reference(row) for row in conn.execute(query).mappings()]


def list_links(conn: Connection, suite: str | None) -> list[LinkRecord]:
    """Every reference link (of one suite, or all), ordered by the newer reference's id,
    then benchmark and metric."""
    links, refs = t.reference_links, t.suite_references
    query = select(links).order_by(links.c.reference_id, links.c.benchmark, links.c.metric)
    if suite is not None:
        query = query.join(refs, refs.c.id == links.c.reference_id).where(refs.c.suite == suite)
    return [
        LinkRecord(**{**row, "pair_ratios": tuple(json.loads(row["pair_ratios"]))})
        for row in conn.execute(query).mappings()
    ]


# ----------------------------------------------------------------------------- ratios


def insert_ratios(conn: Connection, records: Sequence[RatioRecord]) -> None:
    """Store ratios. Raises NotFoundError for an unknown run or reference, ConflictError
    for a run x benchmark x metric that already has one (or is given twice)."""
    if not records:
        return
    _require_ids(conn, t.benchmark_runs, "run",
                 {r.run_id for r in records}
                 | {r.reference_run_id for r in records if r.reference_run_id is not None})
    _require_ids(conn, t.suite_references, "reference", {r.reference_id for r in records})
    keys = [(r.run_id, r.benchmark, r.metric) for r in records]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ConflictError(f"ratio of run {twice[0]} {twice[1]}/{twice[2]} given twice")
    c = t.run_ratios.c
    stored = conn.execute(
        select(c.run_id, c.benchmark, c.metric).where(c.run_id.in_({k[0] for k in keys}))
    )
    clash = sorted({tuple(row) for row in stored} & set(keys))
    if clash:
        run_id, benchmark, metric = clash[0]
        raise ConflictError(f"run {run_id} already has a ratio for {benchmark}/{metric}")
    conn.execute(
        insert(t.run_ratios),
        [
            {
                "run_id": r.run_id,
                "reference_run_id": r.reference_run_id,
                "reference_id": r.reference_id,
                "benchmark": r.benchmark,
                "metric": r.metric,
                "ratio": r.ratio,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "n_pairs": r.n_pairs,
                # json writes floats with repr, so reading them back gives the same floats.
                "pair_ratios": json.dumps(list(r.pair_ratios)),
            }
            for r in records
        ],
    )


def query_ratios(
    conn: Connection, run_ids: Sequence[int], benchmark: str, metric: str
) -> dict[int, RatioRecord]:
    """Ratios of one benchmark x metric for the given runs, in one query: run id -> ratio,
    only runs that have one."""
    wanted = set(run_ids)
    if not wanted:
        return {}
    c = t.run_ratios.c
    rows = conn.execute(
        select(c.run_id, c.reference_run_id, c.reference_id, c.benchmark, c.metric, c.ratio,
               c.ci_low, c.ci_high, c.n_pairs, c.pair_ratios)
        .where(c.run_id.in_(wanted), c.benchmark == benchmark, c.metric == metric)
    ).mappings()
    return {
        row["run_id"]: RatioRecord(
            **{**row, "pair_ratios": tuple(json.loads(row["pair_ratios"]))}
        )
        for row in rows
    }


# ----------------------------------------------------------------------------- helpers


def _require_current(conn: Connection, suite: str, branch: str, reference_id: int) -> None:
    """Raise ConflictError unless ``reference_id`` is the current reference of suite x branch."""
    refs = t.suite_references
    # Lock that row first: on PostgreSQL (READ COMMITTED) another setting linked from it
    # waits here until this one commits, and then its next query sees this new reference.
    conn.execute(select(refs.c.id).where(refs.c.id == reference_id).with_for_update())
    current = current_reference(conn, suite, branch)
    if current is None or current.id != reference_id:
        moved_to = "none set" if current is None else f"id {current.id}"
        raise ConflictError(
            f"the reference of {suite} on {branch} moved meanwhile (now {moved_to}), "
            "measure the link again"
        )


def _require_ids(conn: Connection, table: Table, what: str, wanted: set[int]) -> None:
    found = set(conn.execute(select(table.c.id).where(table.c.id.in_(wanted))).scalars())
    missing = sorted(wanted - found)
    if missing:
        raise NotFoundError(f"no {what} with id {missing[0]}")


def _reference(row: RowMapping) -> ReferenceRecord:
    return ReferenceRecord(
        id=row["id"],
        suite=row["suite"],
        branch=row["branch"],
        rev=row["rev"],
        commit_sha=row["commit_sha"],
        set_at=row["set_at"],
        set_by=row["set_by"],
        reason=row["reason"],
    )
