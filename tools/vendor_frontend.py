"""Vendor the dashboard's front-end libraries from the npm registry (run by `make vendor`).

The dashboard loads nothing from a CDN: every library it uses is a file under
`central/web/static/vendor/<lib>/`, next to its licence. This script is how those files got there
and how to update them: `npm pack <name>@<version>` (the registry's tarball, checked against the
integrity hash the registry publishes), then only the listed files are extracted, and
`vendor/MANIFEST.json` records the version, the tarball's integrity and every file's SHA-256.
`tests/test_dashboard_assets.py` checks the files against the manifest, so an edited or damaged
vendored file fails the tests. Nothing here runs at run time.

Usage: python tools/vendor_frontend.py [--check]   (--check: compare only, no network writes)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "central" / "web" / "static" / "vendor"
MANIFEST = VENDOR / "MANIFEST.json"

#: name -> (version, {path in the tarball: path under vendor/<name>/}). Licences first.
LIBRARIES: dict[str, tuple[str, dict[str, str]]] = {
    # Apache-2.0 (+ NOTICE, and d3's BSD licence for the bundled parts). The "common" build has the
    # line / bar charts, tooltip, legend and dataZoom the visits view uses, at 2/3 of the full size.
    "echarts": (
        "6.1.0",
        {
            "package/LICENSE": "LICENSE",
            "package/NOTICE": "NOTICE",
            "package/licenses/LICENSE-d3": "LICENSE-d3",
            "package/dist/echarts.common.min.js": "echarts.common.min.js",
        },
    ),
    # BSD-2-Clause. The stylesheet refers to images/ relatively, so the layout is kept.
    "leaflet": (
        "1.9.4",
        {
            "package/LICENSE": "LICENSE",
            "package/dist/leaflet.js": "leaflet.js",
            "package/dist/leaflet.css": "leaflet.css",
            "package/dist/images/layers.png": "images/layers.png",
            "package/dist/images/layers-2x.png": "images/layers-2x.png",
            "package/dist/images/marker-icon.png": "images/marker-icon.png",
            "package/dist/images/marker-icon-2x.png": "images/marker-icon-2x.png",
            "package/dist/images/marker-shadow.png": "images/marker-shadow.png",
        },
    ),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _integrity_ok(tarball: Path, integrity: str) -> bool:
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    return base64.b64encode(digest).decode("ascii") == expected


def fetch(name: str, version: str, files: dict[str, str], work: Path) -> dict[str, object]:
    out = subprocess.run(
        ["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    info = json.loads(out.stdout)[0]
    tarball = work / info["filename"]
    if not _integrity_ok(tarball, info["integrity"]):
        raise SystemExit(f"{name}@{version}: the tarball does not match the registry's integrity hash")
    target = VENDOR / name
    shutil.rmtree(target, ignore_errors=True)
    with tarfile.open(tarball) as archive:
        for member, relative in files.items():
            source = archive.extractfile(member)
            if source is None:
                raise SystemExit(f"{name}@{version}: {member} is not a file in the package")
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(source.read())
    return {
        "version": version,
        "tarball": f"https://registry.npmjs.org/{name}/-/{name}-{version}.tgz",
        "integrity": info["integrity"],
        "files": {relative: sha256(target / relative) for relative in files.values()},
    }


def check() -> list[str]:
    """What differs between the manifest and the files on disk (empty: all good)."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    problems = []
    for name, entry in manifest.items():
        for relative, digest in entry["files"].items():
            path = VENDOR / name / relative
            if not path.is_file():
                problems.append(f"{name}/{relative}: missing")
            elif sha256(path) != digest:
                problems.append(f"{name}/{relative}: SHA-256 differs from the manifest")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare the files with the manifest")
    args = parser.parse_args()
    if args.check:
        problems = check()
        for line in problems:
            sys.stderr.write(line + "\n")
        return 1 if problems else 0
    manifest = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, files) in LIBRARIES.items():
            manifest[name] = fetch(name, version, files, Path(tmp))
            sys.stderr.write(f"vendored {name}@{version}\n")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
