"""Face detector and encoder behind a small interface.

The matcher only ever sees float32 vectors of the model's own length (`FaceModel.dim`: dlib 128,
ArcFace-class ONNX models usually 512), so a stronger model replaces dlib by implementing
`FaceModel` without touching matching or storage. Templates are stored with the name of the model
that made them (`FaceModel.name`) and a roster is built from one model's templates only, so vectors
of two models are never compared. Two implementations: `DlibFaceModel` (the default; its model is
CC0 and comes from PyPI) and `recognizer.onnx_encoder.OnnxFaceModel` (a deployer's ArcFace /
MobileFaceNet-class model, on the same dlib HOG detector). `load_face_model` picks one from the
configuration.

Loading dlib's models takes about a second and ~100 MB, so it happens once, when a model is built,
never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]  # top, right, bottom, left (face_recognition's "css" order)

#: The name dlib's ResNet model has in stored templates and in `recognizer.scoring.PRESETS`.
MODEL_DLIB: Final = "dlib_resnet_v1"
#: Length of dlib's encodings.
DLIB_DIM: Final = 128
#: Encoder names of the `[recognition] encoder` key.
ENCODERS: Final = ("dlib", "onnx")


class FaceModelError(ValueError):
    """A face model that cannot be used (missing, unreadable or wrong-shaped model file)."""


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """Which embedding space templates live in: the model's name and its vectors' length."""

    name: str
    dim: int


DLIB_IDENTITY: Final = ModelIdentity(MODEL_DLIB, DLIB_DIM)


@dataclass(frozen=True, slots=True)
class Detection:
    box: Box
    score: float


class FaceModel(Protocol):
    """What the pipeline needs from a face model."""

    #: Identifies the embedding space: templates and scoring presets are keyed by it.
    name: str
    #: Length of the encodings `encode` returns.
    dim: int

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

    name = MODEL_DLIB
    dim = DLIB_DIM

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
        return hog_detect(self._detector, rgb, upsample)

    def shape(self, rgb: npt.NDArray[np.uint8], box: Box) -> object:
        top, right, bottom, left = box
        return self._shape(rgb, self._dlib.rectangle(left, top, right, bottom))

    def points(self, shape: object) -> npt.NDArray[np.float64]:
        parts = shape.parts()  # type: ignore[attr-defined]
        return np.array([(p.x, p.y) for p in parts], dtype=np.float64)

    def encode(self, rgb: npt.NDArray[np.uint8], shape: object, jitters: int = 1) -> npt.NDArray[np.float32]:
        descriptor = self._encoder.compute_face_descriptor(rgb, shape, jitters)
        return np.asarray(descriptor, dtype=np.float32)


def hog_detect(detector: object, image: npt.NDArray[np.uint8], upsample: int) -> list[Detection]:
    """dlib's HOG detector on an RGB or (faster) grey image, boxes clipped to the image."""
    rects, scores, _ = detector.run(image, upsample, 0.0)  # type: ignore[attr-defined]
    height, width = image.shape[:2]
    found = []
    for rect, score in zip(rects, scores, strict=True):
        top, right = max(rect.top(), 0), min(rect.right(), width)
        bottom, left = min(rect.bottom(), height), max(rect.left(), 0)
        if right > left and bottom > top:
            found.append(Detection((top, right, bottom, left), float(score)))
    return found


def describe_face_model(
    encoder: str = "dlib", onnx_model: Path | None = None, onnx_input: str = "auto"
) -> ModelIdentity:
    """The configured model's identity without loading dlib (an ONNX file is read and checked)."""
    if encoder == "dlib":
        return DLIB_IDENTITY
    if encoder == "onnx":
        if onnx_model is None:
            raise FaceModelError('encoder = "onnx" needs onnx_model = "<path to the .onnx file>"')
        from recognizer.onnx_encoder import describe_onnx_model

        info = describe_onnx_model(onnx_model, scaling=onnx_input)  # type: ignore[arg-type]
        return ModelIdentity(info.name, info.dim)
    raise FaceModelError(f"unknown encoder {encoder!r} (one of {', '.join(ENCODERS)})")


def load_face_model(
    encoder: str = "dlib",
    onnx_model: Path | None = None,
    onnx_input: str = "auto",
    onnx_backend: str = "auto",
) -> FaceModel:
    """The configured face model: dlib's (default) or an ONNX model file on dlib's detector.

    Raises `FaceModelError` with a message naming the problem (the caller names the config key).
    """
    if encoder == "dlib":
        return DlibFaceModel()
    if encoder == "onnx":
        if onnx_model is None:
            raise FaceModelError('encoder = "onnx" needs onnx_model = "<path to the .onnx file>"')
        from recognizer.onnx_encoder import OnnxFaceModel

        return OnnxFaceModel(onnx_model, scaling=onnx_input, backend=onnx_backend)  # type: ignore[arg-type]
    raise FaceModelError(f"unknown encoder {encoder!r} (one of {', '.join(ENCODERS)})")
