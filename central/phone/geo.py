"""Where stations are, as the phone's map apps need it: distances, Chinese map datums, navigation links.

Stations are stored in WGS-84 (what GPS receivers, OpenStreetMap and a phone browser's
`navigator.geolocation` give). The map apps Chinese phones have do not use WGS-84: Amap (高德) and
Tencent Maps (腾讯地图) use GCJ-02, the datum the national surveying bureau prescribes for published
maps, and Baidu Maps (百度地图) uses BD-09, a further offset of GCJ-02. A WGS-84 point shown on their
maps lands 100-700 m off, enough to send a courier to the wrong side of a ring road, so every link
we hand to one of them carries the coordinates converted to its datum.

The WGS-84 -> GCJ-02 function is the publicly reverse-engineered one (Krasovsky 1940 ellipsoid,
a = 6378245 m, e^2 = 0.00669342162296594323) that every map SDK's converter reproduces; GCJ-02 ->
BD-09 is Baidu's published formula. Both are tested against published reference points. Outside
mainland China the apps use WGS-84 unchanged, so conversion is skipped there (a bounding box, as
the reference implementations do: Hong Kong, Macao and Taiwan fall inside it and are shifted too,
exactly as those implementations shift them).

Everything here is pure: numbers in, numbers or strings out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlencode

EARTH_RADIUS_M: Final = 6_371_008.8  # mean radius (IUGG): haversine distances good to ~0.5 %
_KRASOVSKY_A: Final = 6_378_245.0
_KRASOVSKY_EE: Final = 0.00669342162296594323
_BD_X_PI: Final = math.pi * 3000.0 / 180.0
#: Who is calling, as the map apps' URI APIs ask for it (`src`, `sourceApplication`, `referer`).
APP_NAME: Final = "yizhan"


@dataclass(frozen=True, slots=True)
class Point:
    """A latitude / longitude pair in degrees. Which datum it is in is the caller's knowledge."""

    lat: float
    lon: float


def check_point(lat: object, lon: object) -> Point:
    """A point from untrusted numbers, or ValueError saying what is wrong (NaN, out of range, bool)."""
    values = []
    for value, name, bound in ((lat, "latitude", 90.0), (lon, "longitude", 180.0)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number of degrees")
        number = float(value)
        if not math.isfinite(number) or not -bound <= number <= bound:
            raise ValueError(f"{name} must be between -{bound:g} and {bound:g} degrees")
        values.append(number)
    return Point(values[0], values[1])


def distance_m(a: Point, b: Point) -> float:
    """Great-circle (haversine) distance in metres between two points of the same datum."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlambda = math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def out_of_china(p: Point) -> bool:
    """True where the Chinese datums do not apply (the reference implementations' bounding box)."""
    return not (72.004 <= p.lon <= 137.8347 and 0.8293 <= p.lat <= 55.8271)


def _shift_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _shift_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(p: Point) -> Point:
    """WGS-84 -> GCJ-02 (Amap, Tencent). Unchanged outside China."""
    if out_of_china(p):
        return p
    dlat = _shift_lat(p.lon - 105.0, p.lat - 35.0)
    dlon = _shift_lon(p.lon - 105.0, p.lat - 35.0)
    radlat = math.radians(p.lat)
    magic = 1 - _KRASOVSKY_EE * math.sin(radlat) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_KRASOVSKY_A * (1 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_KRASOVSKY_A / sqrt_magic * math.cos(radlat) * math.pi)
    return Point(p.lat + dlat, p.lon + dlon)


def gcj02_to_wgs84(p: Point, *, iterations: int = 30) -> Point:
    """GCJ-02 -> WGS-84 by fixed-point iteration (the forward function has no closed inverse).

    Converges to well under a millimetre in a few steps; used to check round trips and to read
    coordinates an installer copied from Amap.
    """
    if out_of_china(p):
        return p
    guess = p
    for _ in range(iterations):
        shifted = wgs84_to_gcj02(guess)
        dlat, dlon = shifted.lat - p.lat, shifted.lon - p.lon
        guess = Point(guess.lat - dlat, guess.lon - dlon)
        if abs(dlat) < 1e-10 and abs(dlon) < 1e-10:
            break
    return guess


def gcj02_to_bd09(p: Point) -> Point:
    """GCJ-02 -> BD-09 (Baidu), Baidu's published formula."""
    x, y = p.lon, p.lat
    z = math.sqrt(x * x + y * y) + 0.00002 * math.sin(y * _BD_X_PI)
    theta = math.atan2(y, x) + 0.000003 * math.cos(x * _BD_X_PI)
    return Point(z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065)


def bd09_to_gcj02(p: Point) -> Point:
    """BD-09 -> GCJ-02 (the published approximate inverse)."""
    x, y = p.lon - 0.0065, p.lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _BD_X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _BD_X_PI)
    return Point(z * math.sin(theta), z * math.cos(theta))


def wgs84_to_bd09(p: Point) -> Point:
    """WGS-84 -> BD-09 through GCJ-02. Outside China Baidu uses WGS-84 as well."""
    return p if out_of_china(p) else gcj02_to_bd09(wgs84_to_gcj02(p))


# -- navigation links -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NavLink:
    """How to open one map app at a station: `app` (its URI scheme, opens the installed app) and
    `web` (an https page of the same vendor that works in any browser, WeChat's included, and
    offers to open the app). Coordinates in both are in the app's own datum."""

    app: str
    web: str


def _c(value: float) -> str:
    return f"{value:.6f}"  # ~0.1 m: more digits only make the links longer


def _plain(text: str) -> str:
    """A name as a URI parameter's value: the separators the apps' parameter syntax uses (`,` `|`
    `;` `:`) and control characters become spaces, so a station name cannot split a field."""
    cleaned = "".join(" " if c in ",|;:" or ord(c) < 32 else c for c in text)
    return " ".join(cleaned.split())[:100]


def navigation_links(station: Point, name: str, address: str | None = None) -> dict[str, NavLink]:
    """Walking directions to a WGS-84 station in Amap, Baidu and Tencent Maps.

    * Amap: `amapuri://route/plan/` (Android; iOS registers `iosamap://path` with the same
      parameters, the page swaps the prefix) with `dev=0` (coordinates already GCJ-02) and `t=2`
      (walking); web: `https://uri.amap.com/navigation` with `coordinate=gaode` and `callnative=1`.
    * Baidu: `baidumap://map/direction` with `coord_type=bd09ll` and BD-09 coordinates; web: the
      marker page of Baidu's URI API (`output=html`).
    * Tencent: `qqmap://map/routeplan` with GCJ-02 `tocoord`; web: `apis.map.qq.com/uri/v1/marker`.
    """
    gcj = wgs84_to_gcj02(station)
    bd = wgs84_to_bd09(station)
    label = _plain(name) or "驿站"
    where = _plain(address or "") or label
    amap_app = "amapuri://route/plan/?" + urlencode(
        {
            "sourceApplication": APP_NAME,
            "dlat": _c(gcj.lat),
            "dlon": _c(gcj.lon),
            "dname": label,
            "dev": "0",
            "t": "2",
        },
        quote_via=quote,
    )
    amap_web = "https://uri.amap.com/navigation?" + urlencode(
        {
            "to": f"{_c(gcj.lon)},{_c(gcj.lat)},{label}",
            "mode": "walk",
            "src": APP_NAME,
            "coordinate": "gaode",
            "callnative": "1",
        },
        quote_via=quote,
        safe=",",
    )
    baidu_app = "baidumap://map/direction?" + urlencode(
        {
            "destination": f"latlng:{_c(bd.lat)},{_c(bd.lon)}|name:{label}",
            "coord_type": "bd09ll",
            "mode": "walking",
            "src": APP_NAME,
        },
        quote_via=quote,
        safe=",:|",
    )
    baidu_web = "https://api.map.baidu.com/marker?" + urlencode(
        {
            "location": f"{_c(bd.lat)},{_c(bd.lon)}",
            "title": label,
            "content": where,
            "coord_type": "bd09ll",
            "output": "html",
            "src": APP_NAME,
        },
        quote_via=quote,
        safe=",",
    )
    tencent_app = "qqmap://map/routeplan?" + urlencode(
        {"type": "walk", "to": label, "tocoord": f"{_c(gcj.lat)},{_c(gcj.lon)}", "referer": APP_NAME},
        quote_via=quote,
        safe=",",
    )
    tencent_web = "https://apis.map.qq.com/uri/v1/marker?" + urlencode(
        {"marker": f"coord:{_c(gcj.lat)},{_c(gcj.lon)};title:{label};addr:{where}", "referer": APP_NAME},
        quote_via=quote,
        safe=",:;",
    )
    return {
        "amap": NavLink(amap_app, amap_web),
        "baidu": NavLink(baidu_app, baidu_web),
        "tencent": NavLink(tencent_app, tencent_web),
    }
