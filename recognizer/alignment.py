"""Five-point face alignment to the 112x112 ArcFace template (for ONNX face models).

ArcFace / MobileFaceNet-class models were trained on faces warped so that five landmarks (the eye
centres, the nose tip and the mouth corners) land on fixed positions of a 112x112 image. Fed the
same face unaligned (a square crop around the detector's box) they lose about half of their true
accepts (../shared/NOTES.md, "Stronger face models"), so alignment is not an optional refinement:
it is part of the model's input format.

We have no five-point detector of our own and need none: dlib's 68-point predictor (shipped with
face_recognition_models, CC0) gives the same five points: the eye centres are the means of the eye
contours, the nose tip is point 30, and each mouth corner is the mean of the outer and inner lip
corners (48 and 60, 54 and 64). Why that mean: it is the definition whose geometry matches the
template's. On 60 photos of ../shared/data/faces the median mouth-width / eye-distance ratio is
0.90 with the outer corners, 0.76 with the inner ones and 0.83 with their mean, against 0.83 in
the template (and the least-squares residual of the fit is smaller); it is also what the evaluation
model's own package does. Measured on landmark geometry only, not on recognition results. The
warp is the least-squares
similarity transform (rotation, uniform scale, translation: no shear, so the face keeps its
proportions) from those points to the template, Umeyama's closed form, which is what InsightFace
uses (via scikit-image) to align its training data.

Pure: numbers in, numbers out (plus one `cv2.warpAffine`).
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Side of the aligned face image the models take.
ALIGNED_SIDE: Final = 112

#: The ArcFace template (InsightFace's `arcface_dst`): where the left eye, right eye (as seen in
#: the image: the person's right eye is on the image's left), nose tip, left and right mouth
#: corners of an aligned 112x112 face are.
ARCFACE_TEMPLATE: Final[FloatArray] = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_TEMPLATE.setflags(write=False)

# dlib's 68-point layout (iBUG 300-W): 36-41 the eye on the image's left, 42-47 the other one,
# 30 the nose tip, 48 / 54 the outer and 60 / 64 the inner lip corners (image left / right).
_EYE_IMAGE_LEFT = slice(36, 42)
_EYE_IMAGE_RIGHT = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_IMAGE_LEFT = (48, 60)
_MOUTH_IMAGE_RIGHT = (54, 64)

# The points dlib's 5-point model gives (two corners per eye, the base of the nose), which the
# quality gates (`recognizer.quality.landmark_geometry`) are written for: outer and inner corner of
# each eye, and the nose base (68-point 33).
_DLIB5_FROM_68: Final = (36, 39, 45, 42, 33)


class AlignmentError(ValueError):
    """Landmarks from which no face transform can be computed (wrong shape, collapsed, non-finite)."""


def five_points_from_68(points68: npt.ArrayLike) -> FloatArray:
    """The ArcFace five points (image-left eye, image-right eye, nose tip, mouth corners) from 68."""
    pts = np.asarray(points68, dtype=np.float64)
    if pts.shape != (68, 2):
        raise AlignmentError(f"expected 68 landmark points as a (68, 2) array, got shape {pts.shape}")
    return np.array(
        [
            pts[_EYE_IMAGE_LEFT].mean(axis=0),
            pts[_EYE_IMAGE_RIGHT].mean(axis=0),
            pts[_NOSE_TIP],
            pts[list(_MOUTH_IMAGE_LEFT)].mean(axis=0),
            pts[list(_MOUTH_IMAGE_RIGHT)].mean(axis=0),
        ],
        dtype=np.float64,
    )


def dlib5_from_68(points68: npt.ArrayLike) -> FloatArray:
    """The five points dlib's 5-point model would give, so the quality gates work unchanged."""
    pts = np.asarray(points68, dtype=np.float64)
    if pts.shape != (68, 2):
        raise AlignmentError(f"expected 68 landmark points as a (68, 2) array, got shape {pts.shape}")
    return pts[list(_DLIB5_FROM_68)].copy()


def similarity_transform(src: npt.ArrayLike, dst: npt.ArrayLike) -> FloatArray:
    """The 2x3 matrix of the least-squares similarity transform taking `src` points onto `dst`.

    Umeyama (1991), "Least-squares estimation of transformation parameters between two point
    patterns", with the reflection guard: a mirrored face is never produced.
    """
    source = np.asarray(src, dtype=np.float64)
    target = np.asarray(dst, dtype=np.float64)
    if source.ndim != 2 or source.shape[1] != 2 or source.shape != target.shape or source.shape[0] < 2:
        raise AlignmentError(
            f"need two matching (N>=2, 2) point arrays, got {source.shape} and {target.shape}"
        )
    if not (np.all(np.isfinite(source)) and np.all(np.isfinite(target))):
        raise AlignmentError("landmarks hold NaN or infinity")
    src_mean = source.mean(axis=0)
    dst_mean = target.mean(axis=0)
    src_c = source - src_mean
    dst_c = target - dst_mean
    src_var = float((src_c**2).sum() / source.shape[0])
    if src_var < 1e-12:
        raise AlignmentError("landmarks collapse to one point: no transform")
    covariance = dst_c.T @ src_c / source.shape[0]
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((singular * sign).sum() / src_var)
    translation = dst_mean - scale * rotation @ src_mean
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = translation
    return matrix


def apply_transform(matrix: npt.ArrayLike, points: npt.ArrayLike) -> FloatArray:
    """`points` (N, 2) mapped by a 2x3 affine matrix."""
    m = np.asarray(matrix, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    return np.asarray(pts @ m[:, :2].T + m[:, 2], dtype=np.float64)


def alignment_matrix(points5: npt.ArrayLike) -> FloatArray:
    """The transform that puts five face points on the ArcFace template."""
    return similarity_transform(points5, ARCFACE_TEMPLATE)


#: Below this scale the image is first shrunk with area averaging (see `align_face`).
_PRESHRINK_BELOW = 0.75


def align_face(rgb: npt.NDArray[np.uint8], points5: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """The 112x112 aligned face (same channel order as `rgb`); outside the image is black.

    `warpAffine` samples with bilinear interpolation, which aliases when it shrinks: a face twice
    the template's size or more would come out with the moire of skipped pixels, and the embedding
    would depend on how close the person stood. So a large face is first shrunk to the template's
    scale with area averaging (`INTER_AREA`) and the rest of the transform is applied to that.
    """
    points = np.asarray(points5, dtype=np.float64)
    matrix = alignment_matrix(points)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    image = rgb
    if scale < _PRESHRINK_BELOW:
        height, width = rgb.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)
        factor = np.array([size[0] / width, size[1] / height])
        matrix = alignment_matrix(points * factor)
    aligned = cv2.warpAffine(
        image,
        matrix,
        (ALIGNED_SIDE, ALIGNED_SIDE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return np.asarray(aligned, dtype=np.uint8)
