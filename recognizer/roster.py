"""The in-memory roster the door matches against: an immutable snapshot, swapped atomically.

The camera thread reads `RosterHolder.current` once per decision and works on that snapshot to the
end, so a roster change arriving mid-decision (an enrolment, a revocation from the centre) can never
give it half an old and half a new roster. Building a snapshot is the only expensive step and happens
off the hot path; publishing it is one attribute assignment, which is atomic in CPython.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from recognizer.encoder import DLIB_DIM

#: The default embedding length (dlib's); a snapshot of another model is built with its `dim`.
EMBEDDING_DIM = DLIB_DIM

FloatMatrix = npt.NDArray[np.float32]


class RosterError(ValueError):
    """A roster could not be built from the data given (wrong shape, NaN, unknown member)."""


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """What the door needs to know about a member besides their face."""

    member_id: str
    name: str
    status: str = "active"  # "active" | "suspended"
    groups: tuple[str, ...] = ()
    kind: str | None = None
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    #: Never by face alone: the pass names the member and the face confirms it (a confirmed lookalike).
    requires_pass: bool = False

    def is_valid_at(self, when: dt.datetime) -> tuple[bool, str | None]:
        """(True, None) if the member may enter at `when`, else (False, reason)."""
        if self.status != "active":
            return False, f"member_{self.status}"
        if self.valid_from is not None and when < _aware(self.valid_from):
            return False, "member_not_yet_valid"
        if self.valid_until is not None and when > _aware(self.valid_until):
            return False, "member_expired"
        return True, None


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class RosterSnapshot:
    """Templates as one float32 matrix plus the row -> member index, and member records.

    `templates[i]` belongs to member `owners[i]`; `sq_norms[i] = |templates[i]|^2` is precomputed so a
    1:N search is one matrix-vector product (see `recognizer.matcher`). Members without templates
    (QR-only) are in `members` but own no row.
    """

    version: int
    templates: FloatMatrix
    sq_norms: FloatMatrix
    owners: tuple[str, ...]
    owner_index: npt.NDArray[np.int32]  # row -> index into member_ids
    member_ids: tuple[str, ...]  # distinct members owning at least one row, in row order
    members: Mapping[str, MemberInfo] = field(default_factory=lambda: MappingProxyType({}))
    #: Why face matching is unavailable (templates could not be decrypted), else None. Such a
    #: snapshot still holds the members, so QR keeps working; the door loop skips faces instead of
    #: refusing everyone as "unknown".
    faces_unavailable: str | None = None
    #: member id -> index into `member_ids`, and the number of template rows of each member (same
    #: order as `member_ids`). Precomputed by `build` so that scoring can name a member's template
    #: count and find a claimed member's rows without a Python loop over 100k owners per decision.
    member_position: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    template_counts: tuple[int, ...] = ()
    #: The face model the templates come from (`FaceModel.name`), when the builder says. Distances
    #: and therefore scoring presets are model-specific: `recognizer.scoring` refuses to apply a
    #: policy measured for one model to another model's roster.
    model: str | None = None

    @staticmethod
    def build(
        rows: Iterable[tuple[str, npt.ArrayLike]],
        members: Iterable[MemberInfo] = (),
        version: int = 0,
        faces_unavailable: str | None = None,
        *,
        model: str | None = None,
        dim: int = EMBEDDING_DIM,
    ) -> RosterSnapshot:
        """Build a snapshot from (member_id, `dim`-d template) rows and the member records.

        `dim` is the face model's embedding length (dlib: 128); `model` names that model.

        Refuses NaN/inf and wrong lengths: a corrupted template must fail loudly here, never
        become a row that silently matches nothing (or everything).
        """
        member_map = {m.member_id: m for m in members}
        owners: list[str] = []
        vectors: list[npt.NDArray[np.float32]] = []
        for member_id, vector in rows:
            arr = np.asarray(vector, dtype=np.float32).reshape(-1)
            if arr.shape != (dim,):
                raise RosterError(f"template of member {member_id!r} has {arr.size} values, expected {dim}")
            if not np.all(np.isfinite(arr)):
                raise RosterError(f"template of member {member_id!r} holds NaN or infinity")
            if member_map and member_id not in member_map:
                raise RosterError(f"template row names unknown member {member_id!r}")
            owners.append(member_id)
            vectors.append(arr)
        matrix = (
            np.ascontiguousarray(np.stack(vectors), dtype=np.float32)
            if vectors
            else np.zeros((0, dim), dtype=np.float32)
        )
        matrix.setflags(write=False)
        sq = np.einsum("ij,ij->i", matrix, matrix).astype(np.float32)
        sq.setflags(write=False)
        ids: list[str] = []
        position: dict[str, int] = {}
        index = np.empty(len(owners), dtype=np.int32)
        for row, member_id in enumerate(owners):
            if member_id not in position:
                position[member_id] = len(ids)
                ids.append(member_id)
            index[row] = position[member_id]
        index.setflags(write=False)
        counts = np.bincount(index, minlength=len(ids)) if len(owners) else np.zeros(0, dtype=np.int64)
        return RosterSnapshot(
            version=version,
            templates=matrix,
            sq_norms=sq,
            owners=tuple(owners),
            owner_index=index,
            member_ids=tuple(ids),
            members=MappingProxyType(member_map),
            faces_unavailable=faces_unavailable,
            member_position=MappingProxyType(position),
            template_counts=tuple(int(c) for c in counts),
            model=model,
        )

    @property
    def size(self) -> int:
        """Number of template rows."""
        return int(self.templates.shape[0])

    @property
    def dim(self) -> int:
        """Length of the template vectors (the face model's embedding size)."""
        return int(self.templates.shape[1])

    def position_of(self, member_id: str) -> int | None:
        """Index of `member_id` in `member_ids` (None when the member owns no template row)."""
        if self.member_position:
            return self.member_position.get(member_id)
        try:
            return self.member_ids.index(member_id)
        except ValueError:
            return None

    def template_count(self, member_id: str) -> int:
        """How many template rows `member_id` owns (0 for a QR-only or unknown member)."""
        position = self.position_of(member_id)
        if position is None:
            return 0
        if self.template_counts:
            return self.template_counts[position]
        return int(np.count_nonzero(self.owner_index == position))

    def templates_of(self, member_id: str) -> FloatMatrix:
        rows = [i for i, owner in enumerate(self.owners) if owner == member_id]
        return self.templates[rows]


class RosterHolder:
    """Holds the current snapshot; readers take it lock-free, writers swap it whole."""

    def __init__(self, snapshot: RosterSnapshot | None = None) -> None:
        self._snapshot = snapshot if snapshot is not None else RosterSnapshot.build(())
        self._write_lock = threading.Lock()

    @property
    def current(self) -> RosterSnapshot:
        return self._snapshot

    def swap(self, snapshot: RosterSnapshot) -> RosterSnapshot:
        """Publish `snapshot`; refuses to go back to an older version (a late, stale rebuild)."""
        with self._write_lock:
            previous = self._snapshot
            if snapshot.version < previous.version:
                raise RosterError(
                    f"refusing to replace roster version {previous.version} with older {snapshot.version}"
                )
            self._snapshot = snapshot
            return previous
