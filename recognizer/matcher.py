"""1:N matching of one 128-d encoding against a roster snapshot.

Distances come from the expansion |q - m|^2 = |q|^2 - 2 q.m + |m|^2, with |m|^2 precomputed in the
snapshot: one float32 matrix-vector product (BLAS) instead of materialising N difference vectors.
At 100k templates this is ~5 ms here against ~80 ms for `np.linalg.norm(M - q, axis=1)`.

The rule is threshold *and* margin: dlib's customary 0.6 is a 1:1 figure. Over a roster, a stranger
is compared with everyone and will sit under 0.6 of somebody (on our East Asian photos 98 of 246
impostor pairs do). Requiring the best member to beat the best *other* member by a margin removes
those accepts at a small cost in true accepts (see docs/BENCHMARKS.md for the measured table).
The door's full rule (the cohort ratio and the named presets) is `recognizer.scoring`, built on
`squared_distances` and `nearest_members` here; `match` stays as the legacy threshold + margin rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recognizer.roster import EMBEDDING_DIM, RosterSnapshot


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    """Accept when distance <= `threshold` and (runner-up distance - distance) >= `min_margin`."""

    threshold: float = 0.55
    min_margin: float = 0.10

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 2.0:
            raise ValueError(f"threshold must be in (0, 2), got {self.threshold}")
        if not 0.0 <= self.min_margin < 2.0:
            raise ValueError(f"min_margin must be in [0, 2), got {self.min_margin}")


@dataclass(frozen=True, slots=True)
class MatchOutcome:
    """The numbers a match decision is made on, and the decision itself.

    `accepted` is False with a `reason` of "empty_roster", "over_threshold" or "low_margin".
    """

    accepted: bool
    nearest_id: str | None  # the closest member, accepted or not (for logs and lookalike reports)
    distance: float | None
    margin: float | None
    runner_up_id: str | None
    reason: str | None


def squared_distances(snapshot: RosterSnapshot, query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """|q - m_i|^2 for every template row, clamped at 0 against float32 cancellation."""
    dots = snapshot.templates @ query
    d2 = snapshot.sq_norms - 2.0 * dots
    d2 += np.float32(query @ query)
    np.maximum(d2, 0.0, out=d2)
    return d2


def as_query(encoding: npt.ArrayLike, dim: int = EMBEDDING_DIM) -> npt.NDArray[np.float32]:
    """Validate and convert an encoding to the contiguous float32 vector the matcher expects.

    `dim` is the face model's embedding length (dlib's 128 unless a roster says otherwise)."""
    query = np.ascontiguousarray(encoding, dtype=np.float32).reshape(-1)
    if query.shape != (dim,):
        raise ValueError(f"encoding has {query.size} values, expected {dim}")
    if not np.all(np.isfinite(query)):
        raise ValueError("encoding holds NaN or infinity")
    return query


def best_two(
    snapshot: RosterSnapshot, query: npt.NDArray[np.float32]
) -> tuple[str | None, float | None, str | None, float | None]:
    """(best member, its distance, best other member, its distance) over all template rows."""
    if snapshot.size == 0:
        return None, None, None, None
    d2 = squared_distances(snapshot, query)
    best_row = int(np.argmin(d2))
    best_member = int(snapshot.owner_index[best_row])
    best_d = float(np.sqrt(d2[best_row]))
    if len(snapshot.member_ids) < 2:
        return snapshot.member_ids[best_member], best_d, None, None
    # Rows of the best member are pushed out of reach; argmin of the rest is the runner-up member.
    others = np.where(snapshot.owner_index == best_member, np.float32(np.inf), d2)
    second_row = int(np.argmin(others))
    second_d = float(np.sqrt(others[second_row]))
    return (
        snapshot.member_ids[best_member],
        best_d,
        snapshot.member_ids[int(snapshot.owner_index[second_row])],
        second_d,
    )


#: Rosters up to this many rows are simply sorted; larger ones are cut down first (see below).
_SORT_ALL_ROWS = 4096
#: Length of the strided sample used to find a distance bound on a large roster.
_SAMPLE_ROWS = 2048


def _prefix_rows(d2: npt.NDArray[np.float32], at_least: int) -> npt.NDArray[np.intp]:
    """Row indices of a prefix of the distance order (sorted, nearest first) with >= `at_least` rows.

    A prefix means: every row nearer than the last one returned is returned. On a large roster the
    bound comes from a strided sample: the `at_least`-th smallest sampled distance has at least
    `at_least` rows at or under it in the full array, and typically ~`at_least * stride` (a few
    hundred); one comparison pass selects them (~0.1 ms at 100k rows, against ~1 ms for argpartition).
    """
    size = int(d2.shape[0])
    if size <= _SORT_ALL_ROWS or at_least >= size:
        return np.argsort(d2, kind="stable")
    stride = max(1, size // _SAMPLE_ROWS)
    sample = d2[::stride]
    if at_least > sample.shape[0]:
        return np.argsort(d2, kind="stable")
    bound = np.partition(sample, at_least - 1)[at_least - 1]
    rows = np.flatnonzero(d2 <= bound)
    return rows[np.argsort(d2[rows], kind="stable")]


def nearest_members(
    snapshot: RosterSnapshot,
    d2: npt.NDArray[np.float32],
    count: int,
    exclude: int | None = None,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """The `count` members nearest to a query, nearest first: (positions in `member_ids`, distances).

    `d2` is `squared_distances(snapshot, query)`; a member's distance is that of their nearest
    template, and `exclude` (a member position) is left out. Fewer are returned when the roster
    holds fewer members.

    Exact without sorting all rows: within a prefix of the rows in distance order, the first
    occurrence of each member is that member's nearest row, and a member with no row in the prefix
    is further than every row in it. The prefix is widened (4x) until it holds enough members.
    """
    size = int(d2.shape[0])
    if size == 0 or count <= 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
    wanted = count + (1 if exclude is not None else 0)
    at_least = wanted
    while True:
        rows = _prefix_rows(d2, at_least)
        owners = snapshot.owner_index[rows]
        _, first = np.unique(owners, return_index=True)
        first.sort()  # first occurrences, in distance order
        members = owners[first].astype(np.intp)
        distances = d2[rows[first]]
        if exclude is not None:
            keep = members != exclude
            members, distances = members[keep], distances[keep]
        if members.shape[0] >= count or rows.shape[0] >= size:
            return members[:count], np.sqrt(distances[:count]).astype(np.float32)
        at_least = min(size, max(at_least * 4, int(rows.shape[0]) * 2))


def match(snapshot: RosterSnapshot, encoding: npt.ArrayLike, policy: MatchPolicy) -> MatchOutcome:
    """Identify `encoding` against `snapshot` under `policy`."""
    query = as_query(encoding)
    member, distance, runner_up, runner_d = best_two(snapshot, query)
    if member is None or distance is None:
        return MatchOutcome(False, None, None, None, None, "empty_roster")
    margin = None if runner_d is None else runner_d - distance
    if distance > policy.threshold:
        return MatchOutcome(False, member, distance, margin, runner_up, "over_threshold")
    if margin is not None and margin < policy.min_margin:
        return MatchOutcome(False, member, distance, margin, runner_up, "low_margin")
    return MatchOutcome(True, member, distance, margin, runner_up, None)


def verify(
    snapshot: RosterSnapshot, member_id: str, encoding: npt.ArrayLike, threshold: float
) -> tuple[bool, float | None]:
    """1:1: is `encoding` within `threshold` of any template of `member_id`? (accepted, distance)."""
    query = as_query(encoding)
    rows = snapshot.templates_of(member_id)
    if rows.shape[0] == 0:
        return False, None
    diffs = rows - query
    distance = float(np.sqrt(np.min(np.einsum("ij,ij->i", diffs, diffs))))
    return distance <= threshold, distance
