"""An ArcFace / MobileFaceNet-class face encoder in ONNX format, on dlib's detector and landmarks.

Why: dlib's 128-d model cannot keep East Asian strangers out on distance alone (issue 13: the
nearest impostor sits where members do). Models of the ArcFace family separate those faces far
better and, MobileFaceNet-sized, embed several times faster than dlib's ResNet. onnxruntime runs
them on x86-64 and on the Pi (aarch64 wheels) without a deep-learning framework.

What this module does around the model file (any 112x112 ArcFace-style model: InsightFace's packs,
OpenCV Zoo's SFace, the evaluation model of `make eval-model`):

- **detection** stays dlib's HOG (`recognizer.encoder.hog_detect`), so the door's detection path,
  timings and quality gates are the same whichever encoder runs;
- **landmarks**: dlib's 68-point predictor, from which the five ArcFace points are derived and the
  five points the quality gates expect (`recognizer.alignment`);
- **alignment**: similarity transform of the five points onto the 112x112 ArcFace template;
- **input format**, read from the graph: NCHW or NHWC from the input's shape; whether the model
  normalises its input itself (InsightFace's test: a `Sub` and a `Mul` among the first nodes), else
  `(x - 127.5) / 127.5`. Channels are RGB, as every model of this family named above expects;
- **output**: the embedding length comes from the model; vectors are L2-normalised, so distances
  lie in [0, 2] (Euclidean on the unit sphere, a monotone function of cosine similarity);
- **inference**: onnxruntime reads and checks every model and is the reference. OpenCV's DNN module
  (already a dependency) runs the same file 3-4x faster on this x86 box for the evaluation model
  (about 7-10 ms against 25-30 ms per face, 1 thread: bench.encoders), so with `backend="auto"`
  it is used **when** it imports the model and its embedding of a probe face equals onnxruntime's
  (within `BACKEND_TOLERANCE`); otherwise onnxruntime runs it. The backend never changes the
  embeddings, hence not the model's name either.

Identity: a model is named `onnx-<first 12 hex of its file's SHA-256>`. Templates and scoring
presets are keyed by that name, so replacing the file (even by a retrained model of the same name)
can never let the new model be scored with the old one's thresholds or compared with its templates.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from recognizer.alignment import ALIGNED_SIDE, align_face, dlib5_from_68, five_points_from_68
from recognizer.encoder import Box, Detection, FaceModelError, ModelLocks, hog_detect

InputScaling = Literal["auto", "pm1", "raw"]
Backend = Literal["auto", "opencv", "onnxruntime"]

#: Embedding lengths we accept from a model (ArcFace-class models give 128-512); the MQTT contract's
#: bounds (contract.messages.VECTOR_DIM_MIN / MAX), so every model's templates can travel.
MIN_DIM: Final = 64
MAX_DIM: Final = 1024
#: Model files larger than this are refused before being read (the largest ArcFace packs are ~250 MB).
MAX_MODEL_BYTES: Final = 600 * 1024 * 1024
#: How many of the graph's first nodes are looked at for an in-graph normalisation.
_NORMALISATION_PROBE_NODES: Final = 8
_PM1_MEAN: Final = 127.5
_PM1_STD: Final = 127.5
#: OpenCV's DNN is used only when its embedding of a probe face matches onnxruntime's to this much
#: (per component of the L2-normalised vector; measured: 4e-7 on the evaluation model).
BACKEND_TOLERANCE: Final = 1e-4


@dataclass(frozen=True, slots=True)
class OnnxModelInfo:
    """What the station knows about a model file, read without running a face through it."""

    path: Path
    sha256: str
    name: str
    dim: int
    layout: Literal["nchw", "nhwc"]
    input_name: str
    output_name: str
    #: "pm1": the station feeds (x - 127.5) / 127.5; "raw": 0..255 (the model normalises itself).
    scaling: Literal["pm1", "raw"]
    #: What the graph inspection concluded, before any configured override.
    detected_scaling: Literal["pm1", "raw"]
    #: Which library runs the model ("" until a model is loaded) and, if not the one asked for, why.
    backend: str = ""
    backend_note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "name": self.name,
            "dim": self.dim,
            "layout": self.layout,
            "scaling": self.scaling,
            "backend": self.backend,
            "backend_note": self.backend_note,
        }


def model_name(sha256: str, scaling: str = "", detected: str = "") -> str:
    """`onnx-<sha prefix>`, plus the scaling when it was overridden (different embeddings)."""
    base = f"onnx-{sha256[:12]}"
    return base if not scaling or scaling == detected else f"{base}-{scaling}"


def _read_model(path: Path) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FaceModelError(f"model file {path} does not exist") from None
    except OSError as exc:
        raise FaceModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise FaceModelError(f"{path} is not a file")
    if size > MAX_MODEL_BYTES:
        raise FaceModelError(f"model file {path} is {size / 2**20:.0f} MB: too large for a face encoder")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FaceModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None


def _detect_scaling(data: bytes) -> Literal["pm1", "raw"]:
    """Does the graph normalise its own input? InsightFace's test: a Sub and a Mul among the first
    nodes (then the model takes 0..255), else the ArcFace convention (x - 127.5) / 127.5."""
    import onnx

    try:
        graph = onnx.load_model_from_string(data).graph
    except Exception as exc:  # onnx raises DecodeError and friends: all mean "not a model"
        raise FaceModelError(f"not an ONNX model ({type(exc).__name__}: {exc})") from None
    ops = {node.op_type for node in graph.node[:_NORMALISATION_PROBE_NODES]}
    return "raw" if {"Sub", "Mul"} <= ops else "pm1"


def _session(data: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # EXTENDED, not ALL: ALL adds the x86 NCHWc layout transform, which made the evaluation model
    # (a MobileFaceNet of depthwise convolutions) ~3x slower here (min 78 ms against 26 ms per face,
    # 1 thread, onnxruntime 1.32). On ARM that transform does not exist, so nothing is lost there.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.log_severity_level = 3  # errors only: no warnings on the station's stderr
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors are its own classes (Fail, InvalidGraph, ...)
        raise FaceModelError(f"onnxruntime cannot load it ({type(exc).__name__}: {exc})") from None


def _layout(shape: list[Any]) -> Literal["nchw", "nhwc"]:
    """NCHW or NHWC from a 4-d input shape of 3 channels at 112x112 (the batch may be symbolic)."""
    if len(shape) == 4:
        batch, *rest = shape
        if batch in (1, None) or isinstance(batch, str):
            if rest == [3, ALIGNED_SIDE, ALIGNED_SIDE]:
                return "nchw"
            if rest == [ALIGNED_SIDE, ALIGNED_SIDE, 3]:
                return "nhwc"
    raise FaceModelError(
        f"input shape {shape}: expected a 112x112 RGB face, [1, 3, 112, 112] (NCHW) or "
        "[1, 112, 112, 3] (NHWC)"
    )


def _inspect(path: Path, data: bytes, session: Any, scaling: InputScaling) -> OnnxModelInfo:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise FaceModelError(f"the model has {len(inputs)} inputs; a face encoder has one (the face image)")
    if inputs[0].type != "tensor(float)":
        raise FaceModelError(f"the model's input is {inputs[0].type}; expected tensor(float)")
    layout = _layout(list(inputs[0].shape))
    outputs = session.get_outputs()
    if not outputs:
        raise FaceModelError("the model has no output")
    # The embedding's length from an actual run (a symbolic output shape says nothing).
    probe_shape = (
        (1, 3, ALIGNED_SIDE, ALIGNED_SIDE) if layout == "nchw" else (1, ALIGNED_SIDE, ALIGNED_SIDE, 3)
    )
    try:
        result = session.run([outputs[0].name], {inputs[0].name: np.zeros(probe_shape, np.float32)})[0]
    except Exception as exc:
        raise FaceModelError(f"the model fails on a 112x112 face ({type(exc).__name__}: {exc})") from None
    out = np.asarray(result)
    if out.ndim not in (1, 2) or (out.ndim == 2 and out.shape[0] != 1):
        raise FaceModelError(f"output shape {list(out.shape)}: expected one embedding, [1, D] or [D]")
    dim = int(out.shape[-1])
    if not MIN_DIM <= dim <= MAX_DIM:
        raise FaceModelError(
            f"embedding length {dim}: expected {MIN_DIM}..{MAX_DIM} (is this a face encoder?)"
        )
    sha = hashlib.sha256(data).hexdigest()
    detected = _detect_scaling(data)
    chosen: Literal["pm1", "raw"] = detected if scaling == "auto" else scaling
    return OnnxModelInfo(
        path=path,
        sha256=sha,
        name=model_name(sha, chosen, detected),
        dim=dim,
        layout=layout,
        input_name=str(inputs[0].name),
        output_name=str(outputs[0].name),
        scaling=chosen,
        detected_scaling=detected,
    )


def describe_onnx_model(path: Path, *, scaling: InputScaling = "auto") -> OnnxModelInfo:
    """Read, check and describe a model file without loading any landmark model.

    Raises `FaceModelError` for a missing or unreadable file, a file that is not an ONNX model, or
    a model that does not take a 112x112 face and give one embedding.
    """
    path = Path(path)
    data = _read_model(path)
    return _inspect(path, data, _session(data, 1), scaling)


@functools.cache
def _landmark_predictor() -> Any:
    """dlib's 68-point predictor, loaded once per process (~100 MB, 1-2 s) and shared.

    Sharing is safe: `shape_predictor.__call__` is a const computation on the model (no state
    between calls), unlike the HOG detector, which each `OnnxFaceModel` keeps to itself.
    """
    import dlib
    import face_recognition_models

    return dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


class OnnxFaceModel:
    """`FaceModel` for a 112x112 ArcFace-class ONNX model (see the module docstring).

    One instance per thread that uses it (dlib's detector and OpenCV's networks are not
    thread-safe), as for `DlibFaceModel`. `threads` is onnxruntime's intra-op thread count: 1 leaves
    the other cores to the camera, the QR decoder and the API. `backend` picks the inference library
    ("auto": OpenCV's DNN when it computes what onnxruntime computes, else onnxruntime).
    """

    def __init__(
        self,
        path: Path,
        *,
        scaling: InputScaling = "auto",
        threads: int = 1,
        backend: Backend = "auto",
        flip: bool = False,
    ) -> None:
        import dlib

        path = Path(path)
        data = _read_model(path)
        session = _session(data, threads)
        info = _inspect(path, data, session, scaling)
        if info.scaling == "pm1":
            self._offset, self._scale = np.float32(_PM1_MEAN), np.float32(1.0 / _PM1_STD)
        else:
            self._offset, self._scale = np.float32(0.0), np.float32(1.0)
        self._session: Any = None
        self._net: Any = None
        chosen, note = "onnxruntime", ""
        if backend in ("auto", "opencv"):
            net, note = _opencv_net(data, info, session, self._offset, self._scale)
            if net is not None:
                self._net, chosen = net, "opencv"
            elif backend == "opencv":
                raise FaceModelError(f'onnx_backend = "opencv" cannot run this model: {note}')
        if self._net is None:
            self._session = session
        self.info = dataclasses.replace(info, backend=chosen, backend_note=note)
        self.flip = flip
        self.name = info.name
        self.dim = info.dim
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = _landmark_predictor()
        self._locks = ModelLocks()  # the door's loop and the API's threads share this model

    def detect(self, rgb: npt.NDArray[np.uint8], upsample: int) -> list[Detection]:
        with self._locks.detect:
            return hog_detect(self._detector, rgb, upsample)

    def shape(self, rgb: npt.NDArray[np.uint8], box: Box) -> object:
        top, right, bottom, left = box
        with self._locks.shape:
            return self._landmarks(rgb, self._dlib.rectangle(left, top, right, bottom))

    @staticmethod
    def landmarks68(shape: object) -> npt.NDArray[np.float64]:
        parts = shape.parts()  # type: ignore[attr-defined]
        return np.array([(p.x, p.y) for p in parts], dtype=np.float64)

    def points(self, shape: object) -> npt.NDArray[np.float64]:
        """The five points of dlib's 5-point model (what the quality gates measure)."""
        return dlib5_from_68(self.landmarks68(shape))

    def aligned(self, rgb: npt.NDArray[np.uint8], shape: object) -> npt.NDArray[np.uint8]:
        """The 112x112 face the model sees (RGB)."""
        return align_face(rgb, five_points_from_68(self.landmarks68(shape)))

    def embed_aligned(self, face: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """The L2-normalised embedding of an aligned 112x112 RGB face (with `flip`: of the sum of
        the face's and its mirror image's raw embeddings)."""
        if face.shape != (ALIGNED_SIDE, ALIGNED_SIDE, 3):
            raise ValueError(f"an aligned face is {ALIGNED_SIDE}x{ALIGNED_SIDE}x3, got {face.shape}")
        out = self._forward(face)
        if self.flip:
            out = out + self._forward(np.ascontiguousarray(face[:, ::-1]))
        return _unit(out, self.name)

    def _forward(self, face: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """The model's raw output for one aligned face, flattened (not normalised)."""
        batch = _batch(face, self.info.layout, self._offset, self._scale)
        if self._net is not None:
            with self._locks.encode:  # an OpenCV Net holds its input: one caller at a time
                self._net.setInput(batch)
                out = self._net.forward()
        else:
            out = self._session.run([self.info.output_name], {self.info.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def encode(self, rgb: npt.NDArray[np.uint8], shape: object, jitters: int = 1) -> npt.NDArray[np.float32]:
        """Align on five landmarks, run the model, L2-normalise. `jitters` is dlib's option and
        is ignored here (ArcFace models are evaluated on the aligned face as is)."""
        return self.embed_aligned(self.aligned(rgb, shape))


def _batch(
    face: npt.NDArray[np.uint8], layout: str, offset: np.float32, scale: np.float32
) -> npt.NDArray[np.float32]:
    tensor = (face.astype(np.float32) - offset) * scale
    if layout == "nchw":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor[None], dtype=np.float32)


def _unit(out: npt.ArrayLike, name: str) -> npt.NDArray[np.float32]:
    vector = np.asarray(out, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm <= 0.0:
        raise ValueError(f"model {name} produced an unusable embedding (norm {norm})")
    return np.asarray(vector / np.float32(norm), dtype=np.float32)


def _opencv_net(
    data: bytes, info: OnnxModelInfo, session: Any, offset: np.float32, scale: np.float32
) -> tuple[Any, str]:
    """OpenCV's DNN network for the model when it computes what onnxruntime computes, else
    (None, why not). The probe is a fixed pseudo-random face, so the check is deterministic."""
    import cv2

    face = np.random.default_rng(112).integers(0, 256, (ALIGNED_SIDE, ALIGNED_SIDE, 3), dtype=np.uint8)
    batch = _batch(face, info.layout, offset, scale)
    try:
        net = cv2.dnn.readNetFromONNX(np.frombuffer(data, dtype=np.uint8))
        net.setInput(batch)
        theirs = _unit(net.forward(), info.name)
    except (cv2.error, ValueError) as exc:
        return None, f"OpenCV cannot run it ({str(exc).strip().splitlines()[-1][:200]})"
    reference = _unit(session.run([info.output_name], {info.input_name: batch})[0], info.name)
    if theirs.shape != reference.shape:
        return None, f"OpenCV gives {theirs.size} values, onnxruntime {reference.size}"
    gap = float(np.max(np.abs(theirs - reference)))
    if gap > BACKEND_TOLERANCE:
        return None, f"OpenCV's embedding differs from onnxruntime's by up to {gap:.2g}"
    return net, ""
