"""One face model, used from two threads at once, as a station does: the door's decide loop and the
installer API's worker threads (an enrolment check) share `Station.face_model`. dlib's detector and
network crashed the process (segmentation fault) when two threads ran them together; the model now
serialises each part. Run in a child process, so a crash is a failed test, not a dead test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    from PIL import Image
    from recognizer.encoder import DlibFaceModel

    model = DlibFaceModel()
    def load(path):  # camera-frame sized: what crashed was two threads at once, not big photos
        image = Image.open(path).convert("RGB")
        image.thumbnail((640, 640))
        return np.asarray(image)

    images = [load(p) for p in sys.argv[1:]]
    results, errors = {}, []

    def work(index):
        try:
            rgb = images[index % len(images)]
            out = []
            for _ in range(12):
                found = model.detect(rgb, 1)
                shape = model.shape(rgb, found[0].box)
                out.append(model.encode(rgb, shape))
            results[index] = out
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert not errors, errors
    for index, out in results.items():
        assert all(np.array_equal(out[0], o) for o in out), index  # the same answer every time
    print("ok", len(results))
    """
)


@pytest.mark.parametrize("photos", [("obama_1.jpg", "biden_1.jpg")])
def test_one_model_serves_several_threads_at_once(photos: tuple[str, ...]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *(str(FIXTURES / p) for p in photos)],
        capture_output=True,
        text=True,
        timeout=600,  # far above the expected time: only a hang fails here
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["ok", "4"]
