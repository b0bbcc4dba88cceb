"""Face detector and encoder behind a small interface.

The matcher only ever sees 128-d float32 vectors, so a stronger model can replace dlib later by
implementing `FaceModel` without touching matching or storage (templates carry the model name, so a
roster never mixes vectors from two models). Only dlib ships today, because it is what can be
tested here.

Loading dlib's models takes about a second and ~100 MB, so it happens once, when a `DlibFaceModel`
is built, never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]  # top, right, bottom, left (face_recognition's "css" order)


@dataclass(frozen=True, slots=True)
class Detection:
    box: Box
    score: float


class FaceModel(Protocol):
    """What the pipeline needs from a face model."""

    name: str

    def detect(self, rgb: npt.NDArray[np.uint8], upsample: int) -> list[Detection]: ...

    def shape(self, rgb: npt.NDArray[np.uint8], box: Box) -> object:
        """Landmarks in the model's own form (opaque), reused by `encode`."""
        ...

    def points(self, shape: object) -> npt.NDArray[np.float64]:
        """The 5 landmark points (two corners per eye, nose base) as an (5, 2) array."""
        ...

    def encode(
        self, rgb: npt.NDArray[np.uint8], shape: object, jitters: int = 1
    ) -> npt.NDArray[np.float32]: ...


class DlibFaceModel:
    """dlib's HOG detector, 5-point shape predictor and ResNet encoder (via face_recognition's models)."""

    name = "dlib_resnet_v1"

    def __init__(self) -> None:
        import dlib
        import face_recognition_models

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
        self._encoder = dlib.face_recognition_model_v1(
            face_recognition_models.face_recognition_model_location()
        )

    def detect(self, rgb: npt.NDArray[np.uint8], upsample: int) -> list[Detection]:
        """HOG detection on an RGB or (faster) grey image."""
        rects, scores, _ = self._detector.run(rgb, upsample, 0.0)
        height, width = rgb.shape[:2]
        found = []
        for rect, score in zip(rects, scores, strict=True):
            top, right = max(rect.top(), 0), min(rect.right(), width)
            bottom, left = min(rect.bottom(), height), max(rect.left(), 0)
            if right > left and bottom > top:
                found.append(Detection((top, right, bottom, left), float(score)))
        return found

    def shape(self, rgb: npt.NDArray[np.uint8], box: Box) -> object:
        top, right, bottom, left = box
        return self._shape(rgb, self._dlib.rectangle(left, top, right, bottom))

    def points(self, shape: object) -> npt.NDArray[np.float64]:
        parts = shape.parts()  # type: ignore[attr-defined]
        return np.array([(p.x, p.y) for p in parts], dtype=np.float64)

    def encode(self, rgb: npt.NDArray[np.uint8], shape: object, jitters: int = 1) -> npt.NDArray[np.float32]:
        descriptor = self._encoder.compute_face_descriptor(rgb, shape, jitters)
        return np.asarray(descriptor, dtype=np.float32)
