"""The dashboard's files: vendored libraries exactly as fetched from npm (SHA-256 manifest, with
their licences), nothing loaded from another origin, one module per view, no inline script."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "central" / "web" / "static"
VENDOR = STATIC / "vendor"


def test_vendored_files_match_the_manifest_and_keep_their_licences() -> None:
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text(encoding="utf-8"))
    assert set(manifest) == {"echarts", "leaflet"}
    for name, entry in manifest.items():
        assert entry["integrity"].startswith("sha512-") and entry["tarball"].startswith(
            "https://registry.npmjs.org/"
        )
        assert "LICENSE" in entry["files"], name
        assert (VENDOR / name / "LICENSE").stat().st_size > 500
    check = subprocess.run([sys.executable, str(ROOT / "tools" / "vendor_frontend.py"), "--check"],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stderr


def test_the_check_sees_a_changed_file(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import vendor_frontend
    finally:
        sys.path.pop(0)
    copy = tmp_path / "vendor"
    import shutil

    shutil.copytree(VENDOR, copy)
    (copy / "leaflet" / "leaflet.js").write_text("alert(1)", encoding="utf-8")
    vendor_frontend.VENDOR, vendor_frontend.MANIFEST = copy, copy / "MANIFEST.json"
    try:
        assert vendor_frontend.check() == ["leaflet/leaflet.js: SHA-256 differs from the manifest"]
    finally:
        vendor_frontend.VENDOR, vendor_frontend.MANIFEST = VENDOR, VENDOR / "MANIFEST.json"


def test_nothing_comes_from_another_origin() -> None:
    for path in [STATIC / "index.html", *STATIC.rglob("*.css"), *(STATIC / "js").rglob("*.js")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), path
        assert not re.search(r"""\bimport\s*\(?\s*["']https?://""", text), path
        assert not re.search(r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b", text), path
        assert "eval(" not in text and "new Function" not in text, path
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script (the CSP forbids it)"
    assert not re.search(r"\s(style|on[a-z]+)\s*=", html), "inline style or handler (the CSP forbids them)"


def test_one_module_per_view() -> None:
    main = (STATIC / "js" / "main.js").read_text(encoding="utf-8")
    views = set(re.findall(r'import\("\./views/(\w+)\.js"\)', main))
    assert views == {p.stem for p in (STATIC / "js" / "views").glob("*.js")}
    assert {"live", "stations", "station", "map", "members", "member", "visits", "audit", "staff"} <= views
