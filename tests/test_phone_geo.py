"""Chinese map datums and navigation links, checked against published reference points.

References: the test vectors of eviltransform (googollee/eviltransform, WGS-84 -> GCJ-02 in
Shanghai, Shenzhen and Beijing) and of coordtransform (wandergis/coordtransform, test/app.js:
the four conversions of (116.404, 39.915)).
"""

from __future__ import annotations

import math
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from central.phone.geo import (
    Point,
    bd09_to_gcj02,
    check_point,
    distance_m,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    navigation_links,
    out_of_china,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

EVILTRANSFORM = [  # (wgs lat, wgs lon, gcj lat, gcj lon)
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]
COORDTRANSFORM_INPUT = Point(lat=39.915, lon=116.404)


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), EVILTRANSFORM)
def test_wgs84_to_gcj02_matches_eviltransform(wlat: float, wlon: float, glat: float, glon: float) -> None:
    gcj = wgs84_to_gcj02(Point(wlat, wlon))
    assert gcj.lat == pytest.approx(glat, abs=1e-9) and gcj.lon == pytest.approx(glon, abs=1e-9)
    # and the shift is what makes it matter: hundreds of metres
    assert 300 < distance_m(Point(wlat, wlon), gcj) < 800


def test_the_four_conversions_match_coordtransform() -> None:
    p = COORDTRANSFORM_INPUT
    assert wgs84_to_gcj02(p) == Point(pytest.approx(39.91640428150164), pytest.approx(116.41024449916938))
    assert gcj02_to_bd09(p) == Point(pytest.approx(39.92133699351021), pytest.approx(116.41036949371029))
    assert bd09_to_gcj02(p) == Point(pytest.approx(39.90865673957631), pytest.approx(116.39762729119315))
    # coordtransform's gcj02towgs84 is a one-step approximation (116.39775550083061, 39.91359571849836);
    # ours iterates to the exact inverse, which lies within a metre of it
    exact = gcj02_to_wgs84(p)
    assert distance_m(exact, Point(39.91359571849836, 116.39775550083061)) < 1.0
    assert distance_m(wgs84_to_gcj02(exact), p) < 0.001


def test_bd09_is_gcj02_then_baidus_offset_and_round_trips() -> None:
    w = Point(31.1774276, 121.5272106)
    bd = wgs84_to_bd09(w)
    assert bd == Point(
        pytest.approx(31.181328606874466, abs=1e-6), pytest.approx(121.53801568643858, abs=1e-6)
    )
    assert distance_m(bd09_to_gcj02(bd), wgs84_to_gcj02(w)) < 1.0


def test_outside_china_nothing_is_shifted() -> None:
    for p in (Point(35.6895, 139.6917), Point(48.8566, 2.3522), Point(-33.86, 151.21)):
        assert out_of_china(p)
        assert wgs84_to_gcj02(p) == p and wgs84_to_bd09(p) == p and gcj02_to_wgs84(p) == p
    assert not out_of_china(Point(39.9, 116.4))


def test_haversine_distance() -> None:
    assert distance_m(Point(0, 0), Point(0, 1)) == pytest.approx(111_195, rel=1e-3)
    # Tiananmen to the Beijing railway station, about 2.6 km
    assert distance_m(Point(39.9087, 116.3975), Point(39.9029, 116.4270)) == pytest.approx(2_590, rel=0.02)
    assert distance_m(Point(10, 10), Point(10, 10)) == 0.0


@pytest.mark.parametrize(
    "lat, lon",
    [(math.nan, 1.0), (1.0, math.inf), (91.0, 0.0), (0.0, -180.5), (True, 1.0), ("39.9", 116.4), (None, 1)],
)
def test_hostile_coordinates_are_refused(lat: object, lon: object) -> None:
    with pytest.raises(ValueError):
        check_point(lat, lon)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_navigation_links_carry_each_apps_datum() -> None:
    station = Point(39.911954, 116.377817)
    links = navigation_links(station, "海淀|一号;驿站", "北京市西城区")
    gcj, bd = wgs84_to_gcj02(station), wgs84_to_bd09(station)

    amap = _query(links["amap"].app)
    assert links["amap"].app.startswith("amapuri://route/plan/?")
    assert (float(amap["dlat"]), float(amap["dlon"])) == (
        pytest.approx(gcj.lat, abs=1e-6),
        pytest.approx(gcj.lon, abs=1e-6),
    )
    assert amap["dev"] == "0" and amap["t"] == "2" and amap["dname"] == "海淀 一号 驿站"
    web = _query(links["amap"].web)
    lon, lat, name = web["to"].split(",")
    assert (float(lat), float(lon), name) == (
        pytest.approx(gcj.lat, abs=1e-6),
        pytest.approx(gcj.lon, abs=1e-6),
        "海淀 一号 驿站",
    )
    assert web["coordinate"] == "gaode" and web["callnative"] == "1"

    baidu = _query(links["baidu"].app)
    assert links["baidu"].app.startswith("baidumap://map/direction?") and baidu["coord_type"] == "bd09ll"
    latlng, name = baidu["destination"].split("|")
    lat, lon = latlng.removeprefix("latlng:").split(",")
    assert (float(lat), float(lon)) == (pytest.approx(bd.lat, abs=1e-6), pytest.approx(bd.lon, abs=1e-6))
    assert name == "name:海淀 一号 驿站"
    assert _query(links["baidu"].web)["coord_type"] == "bd09ll"

    tencent = _query(links["tencent"].app)
    lat, lon = tencent["tocoord"].split(",")
    assert (float(lat), float(lon)) == (pytest.approx(gcj.lat, abs=1e-6), pytest.approx(gcj.lon, abs=1e-6))
    marker = _query(links["tencent"].web)["marker"]
    assert marker.startswith(f"coord:{gcj.lat:.6f},{gcj.lon:.6f};title:海淀 一号 驿站;addr:北京市西城区")
    for link in links.values():  # every web link is https and every app link percent-encodes the name
        assert link.web.startswith("https://") and "海淀" not in link.app and "海淀" in unquote(link.app)
