"""The labelled face photos benchmarks and dataset tests run on.

The wider set lives outside the repository (`$YIZHAN_TEST_FACES`, default ../shared/data/faces) because
most of its photos may not be redistributed; the public-domain few are copied into tests/fixtures.
`MANIFEST.tsv` labels each file; East Asian rows are recognised from its notes column.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
ENV_FACES = "YIZHAN_TEST_FACES"


@dataclass(frozen=True, slots=True)
class FacePhoto:
    path: Path
    person: str  # slug, "unknown", "noface" or "a+b" for groups
    faces: int
    east_asian: bool
    category: str  # people | unknown | noface | group | video


def faces_dir(env: dict[str, str] | None = None) -> Path | None:
    """The wider data set, or None when it is not on this machine."""
    env = dict(os.environ) if env is None else env
    candidate = Path(env.get(ENV_FACES) or (REPO.parent / "shared" / "data" / "faces"))
    return candidate if (candidate / "MANIFEST.tsv").is_file() else None


def load_manifest(root: Path) -> list[FacePhoto]:
    photos = []
    with (root / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            category = row["path"].split("/", 1)[0]
            photos.append(
                FacePhoto(
                    path=root / row["path"],
                    person=row["person_slug"],
                    faces=int(row["faces_expected"]),
                    east_asian="East Asian" in row["notes"],
                    category=category,
                )
            )
    return photos


def fixture_photos() -> list[FacePhoto]:
    """The public-domain copies in tests/fixtures (see tests/fixtures/ATTRIBUTION.md)."""
    return [
        FacePhoto(FIXTURES / "obama_1.jpg", "barack_obama", 1, False, "people"),
        FacePhoto(FIXTURES / "obama_2.jpg", "barack_obama", 1, False, "people"),
        FacePhoto(FIXTURES / "biden_1.jpg", "joe_biden", 1, False, "people"),
        FacePhoto(FIXTURES / "eileen_collins.png", "unknown", 1, False, "unknown"),
        FacePhoto(FIXTURES / "cat.png", "noface", 0, False, "noface"),
        FacePhoto(FIXTURES / "coffee.png", "noface", 0, False, "noface"),
    ]


def by_person(photos: list[FacePhoto]) -> dict[str, list[FacePhoto]]:
    """people/ photos grouped by identity, in file order (1.jpg first)."""
    grouped: dict[str, list[FacePhoto]] = {}
    for photo in photos:
        if photo.category == "people":
            grouped.setdefault(photo.person, []).append(photo)
    for items in grouped.values():
        items.sort(key=lambda p: p.path.name)
    return grouped
