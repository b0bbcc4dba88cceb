"""`yizhan-central stations poster ID --png FILE [--pdf FILE]`: an A4 poster whose QR code decodes to
the centre's URL of the station's phone page (no secret on it), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from test_central_cli import Run, _write_config

from central.phone.poster import A4_PX, PosterContent, find_font, hours_text, render_poster, station_url


@pytest.fixture
def cli(central_db: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    from central_fixtures import CentralDb

    assert isinstance(central_db, CentralDb)
    path = _write_config(tmp_path, central_db.url)
    path.write_text(path.read_text() + '[web]\npublic_url = "https://yizhan.example.org/union"\n')
    return Run(path, capsys)


def _qr_texts(path: Path) -> list[str]:
    return [b.text for b in zxingcpp.read_barcodes(Image.open(path))]


def test_the_poster_png_and_pdf(cli: Run, tmp_path: Path) -> None:
    assert (
        cli("stations", "add", "hd-012", "--name", "海淀区学院路暖心驿站", "--address", "学院路35号")[0] == 0
    )
    png, pdf = tmp_path / "poster.png", tmp_path / "poster.pdf"
    code, out, err = cli("stations", "poster", "hd-012", "--png", str(png), "--pdf", str(pdf))
    assert code == 0, err
    assert "https://yizhan.example.org/union/m/s/hd-012" in out
    image = Image.open(png)
    assert image.size == A4_PX and image.info["dpi"] == pytest.approx((300, 300), abs=0.5)
    assert _qr_texts(png) == ["https://yizhan.example.org/union/m/s/hd-012"]
    box = re.search(rb"/MediaBox \[ *0 0 ([0-9.]+) ([0-9.]+) *\]", pdf.read_bytes())
    assert pdf.read_bytes().startswith(b"%PDF") and box is not None
    assert (float(box[1]), float(box[2])) == (pytest.approx(595.3, abs=1), pytest.approx(841.9, abs=1))  # A4
    # the QR code still reads when the poster is printed small and photographed from afar
    small = image.resize((A4_PX[0] // 6, A4_PX[1] // 6))
    assert [b.text for b in zxingcpp.read_barcodes(small)] == ["https://yizhan.example.org/union/m/s/hd-012"]


def test_without_a_public_url_the_poster_says_where_it_points(
    central_db: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from central_fixtures import CentralDb

    assert isinstance(central_db, CentralDb)
    cli = Run(_write_config(tmp_path, central_db.url), capsys)
    cli("stations", "add", "cy-1", "--name", "朝阳一号")
    code, _, err = cli("stations", "poster", "cy-1", "--png", str(tmp_path / "p.png"))
    assert code == 0 and "public_url is not set" in err
    assert _qr_texts(tmp_path / "p.png") == ["http://127.0.0.1:8090/m/s/cy-1"]
    code, _, err = cli(
        "stations", "poster", "cy-1", "--png", str(tmp_path / "q.png"), "--base-url", "https://a.b"
    )
    assert code == 0 and err == "" and _qr_texts(tmp_path / "q.png") == ["https://a.b/m/s/cy-1"]


def test_poster_refusals_are_exit_2(cli: Run, tmp_path: Path) -> None:
    cli("stations", "add", "hd-1", "--name", "海淀一号")
    assert cli("stations", "poster", "nope", "--png", str(tmp_path / "x.png"))[0] == 2
    assert cli("stations", "poster", "hd-1")[0] == 2  # nowhere to write
    code, _, err = cli("stations", "poster", "hd-1", "--png", str(tmp_path / "missing" / "x.png"))
    assert code == 2 and "cannot write" in err


def test_station_urls_escape_and_names_wrap() -> None:
    assert station_url("https://x.org/", "a.b_c-1") == "https://x.org/m/s/a.b_c-1"
    long_name = "非常非常长的驿站名字" * 4
    image = render_poster(PosterContent("s-1", long_name, "https://x.org/m/s/s-1"), find_font())
    assert [b.text for b in zxingcpp.read_barcodes(image)] == ["https://x.org/m/s/s-1"]
    assert hours_text({"always_open": True}) == "24小时开放"
    week = {d: ["06:00-22:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    assert hours_text({"always_open": False, "weekly": week}) == "每天 06:00-22:00"
    assert hours_text({"always_open": False, "weekly": {**week, "sun": "closed"}}).endswith("周日 休息")
