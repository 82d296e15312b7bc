"""speedscope JSON export (and import, for round trips) of a Profile.

speedscope's file format (https://www.speedscope.app/file-format-schema.json) keeps frame
names once in ``shared.frames``; a *sampled* profile lists stacks as frame indexes, root
first, each with a weight. perfd writes one stack per distinct folded stack, weight = samples.
"""

from __future__ import annotations

import json
from typing import Any

from perfd import __version__
from perfd.evidence.profile import Profile, Stack

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def to_speedscope(profile: Profile, *, name: str = "perfd profile") -> dict[str, Any]:
    """speedscope document (a dict) with one sampled profile; weights are sample counts."""
    frames: list[dict[str, str]] = []
    index: dict[str, int] = {}
    samples: list[list[int]] = []
    weights: list[int] = []
    for stack, count in profile.sorted_items():
        ids = []
        for frame in stack:
            i = index.get(frame)
            if i is None:
                i = index[frame] = len(frames)
                frames.append({"name": frame})
            ids.append(i)
        samples.append(ids)
        weights.append(count)
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "shared": {"frames": frames},
        "profiles": [{
            "type": "sampled", "name": name, "unit": "none",
            "startValue": 0, "endValue": profile.total,
            "samples": samples, "weights": weights,
        }],
        "name": name,
        "activeProfileIndex": 0,
        "exporter": f"perfd@{__version__}",
    }


def to_speedscope_json(profile: Profile, *, name: str = "perfd profile") -> str:
    """:func:`to_speedscope` serialised compactly (same profile -> same bytes)."""
    return json.dumps(to_speedscope(profile, name=name), separators=(",", ":"), ensure_ascii=False) + "\n"


def parse_speedscope(text: str, *, profile_index: int | None = None) -> Profile:
    """Profile from speedscope JSON: the sampled profile at ``profile_index`` (default: the
    file's activeProfileIndex, else 0). Weights must be whole numbers. Raises ValueError."""
    try:
        doc = json.loads(text)
        frames = [f["name"] for f in doc["shared"]["frames"]]
        profiles = doc["profiles"]
        index = profile_index if profile_index is not None else int(doc.get("activeProfileIndex") or 0)
        prof = profiles[index]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"not a speedscope file perfd can read: {exc!r}") from exc
    if prof.get("type") != "sampled":
        raise ValueError(f"speedscope profile {index} is {prof.get('type')!r}; perfd reads 'sampled' only")
    samples, weights = prof.get("samples", []), prof.get("weights", [])
    if len(samples) != len(weights):
        raise ValueError(f"speedscope profile {index}: {len(samples)} samples but {len(weights)} weights")
    pairs: list[tuple[Stack, int]] = []
    for ids, weight in zip(samples, weights, strict=True):
        if not isinstance(weight, int | float) or weight < 0 or weight != int(weight):
            raise ValueError(f"speedscope profile {index}: weight {weight!r} is not a sample count")
        try:
            stack = tuple(frames[i] for i in ids)
        except (IndexError, TypeError) as exc:
            raise ValueError(f"speedscope profile {index}: bad frame index in {ids!r}") from exc
        if stack:
            pairs.append((stack, int(weight)))
    return Profile.from_samples(pairs, source="folded")
