"""The station poster: an A4 sheet for the door with the station's name, a large QR code to the
station's page at the centre, and a few lines of Chinese saying what to do.

The QR code is only an address (`<public url>/m/s/<station id>`): it holds no secret, anyone may
photograph it, and what it opens is decided by the centre for the logged-in worker. Drawn with
Pillow at 300 dpi (2480 x 3508 px); the PDF is the same image on one A4 page, so PNG and PDF can
never disagree. The QR code uses error correction level Q (a quarter of it may be scuffed or
sun-bleached) and gets the standard's 4-module quiet zone.

A font with Chinese characters is needed: `[phone] poster_font_file`, else the first found of the
usual system fonts (Debian: `fonts-wqy-zenhei`, `fonts-noto-cjk`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import segno
from PIL import Image, ImageDraw, ImageFont

DPI = 300
A4_PX = (2480, 3508)  # 210 x 297 mm at 300 dpi
MARGIN = 170
UNION_RED = (200, 16, 46)
INK = (30, 30, 30)
GREY = (100, 100, 100)
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
)
INSTRUCTIONS = (
    "用微信或手机相机扫一扫",
    "第一次：扫码注册（姓名、手机号），不用下载App",
    "以后：扫码点“开门”，门就开了",
    "也可以刷脸，或在门口摄像头前出示“我的通行码”",
)


class PosterError(Exception):
    """The poster cannot be drawn (no font with Chinese characters, ...)."""


@dataclass(frozen=True, slots=True)
class PosterContent:
    station_id: str
    name: str
    url: str
    address: str | None = None
    hours: str | None = None
    contact: str | None = None


def station_url(base_url: str, station_id: str) -> str:
    """The page a poster's QR code opens: `<base>/m/s/<station id>`."""
    return f"{base_url.rstrip('/')}/m/s/{quote(station_id, safe='')}"


def find_font(configured: Path | None = None) -> Path:
    if configured is not None:
        if not configured.is_file():
            raise PosterError(f"[phone] poster_font_file {configured} does not exist")
        return configured
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise PosterError(
        "no font with Chinese characters found: install one (Debian: apt-get install fonts-wqy-zenhei) "
        "or set [phone] poster_font_file"
    )


def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(str(path), size)
    except OSError as exc:
        raise PosterError(f"cannot load the poster font {path}: {exc}") from None


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Lines of `text` no wider than `width` (character by character: Chinese has no spaces)."""
    lines: list[str] = []
    line = ""
    for char in text:
        if draw.textlength(line + char, font=font) > width and line:
            lines.append(line)
            line = char
        else:
            line += char
    if line:
        lines.append(line)
    return lines


def _centered(
    draw: ImageDraw.ImageDraw,
    y: int,
    lines: Sequence[str],
    font: ImageFont.FreeTypeFont,
    fill: tuple[int, int, int],
    gap: int,
) -> int:
    for line in lines:
        width = draw.textlength(line, font=font)
        draw.text(((A4_PX[0] - width) / 2, y), line, font=font, fill=fill)
        y += int(font.size * 1.25) + gap
    return y


def render_poster(content: PosterContent, font_path: Path) -> Image.Image:
    """The poster as an RGB image of A4 at 300 dpi."""
    image = Image.new("RGB", A4_PX, "white")
    draw = ImageDraw.Draw(image)
    width = A4_PX[0] - 2 * MARGIN

    # Header band: whose station this is.
    draw.rectangle((0, 0, A4_PX[0], 330), fill=UNION_RED)
    _centered(draw, 90, ["工会驿站 · 户外劳动者之家"], _font(font_path, 120), (255, 255, 255), 0)

    # The station's name, as large as fits.
    size = 190
    name_font = _font(font_path, size)
    while size > 90 and draw.textlength(content.name, font=name_font) > width:
        size -= 10
        name_font = _font(font_path, size)
    y = _centered(draw, 420, _wrap(draw, content.name, name_font, width)[:2], name_font, INK, 10)

    # The QR code: about 14 cm wide.
    qr = segno.make_qr(content.url, error="q", boost_error=True)
    buffer = io.BytesIO()
    modules = qr.symbol_size(border=4)[0]
    qr.save(buffer, kind="png", scale=max(1, 1650 // modules), border=4)
    code = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    y += 40
    image.paste(code, ((A4_PX[0] - code.width) // 2, y))
    y += code.height + 40

    # What to do.
    y = _centered(draw, y, [INSTRUCTIONS[0]], _font(font_path, 110), UNION_RED, 30)
    body = _font(font_path, 68)
    for line in INSTRUCTIONS[1:]:
        y = _centered(draw, y, _wrap(draw, line, body, width), body, INK, 8)

    # Where and when, at the foot.
    small = _font(font_path, 52)
    footer = [
        line
        for line in (
            f"地址：{content.address}" if content.address else None,
            f"开放时间：{content.hours}" if content.hours else None,
            f"联系电话：{content.contact}" if content.contact else None,
            f"驿站编号：{content.station_id}",
        )
        if line
    ]
    lines = [part for line in footer for part in _wrap(draw, line, small, width)]
    foot_y = A4_PX[1] - MARGIN - len(lines) * int(small.size * 1.25 + 6)
    draw.line((MARGIN, foot_y - 40, A4_PX[0] - MARGIN, foot_y - 40), fill=GREY, width=3)
    _centered(draw, foot_y, lines, small, GREY, 6)
    return image


def poster_bytes(content: PosterContent, font_path: Path, kind: str) -> bytes:
    """The poster as PNG or PDF bytes (one A4 page at 300 dpi)."""
    image = render_poster(content, font_path)
    buffer = io.BytesIO()
    if kind == "png":
        image.save(buffer, format="PNG", dpi=(DPI, DPI), optimize=True)
    elif kind == "pdf":
        image.save(buffer, format="PDF", resolution=DPI, title=f"驿站海报 {content.station_id}")
    else:
        raise ValueError(f"poster kind is png or pdf, not {kind!r}")
    return buffer.getvalue()


def hours_text(schedule: dict[str, object]) -> str:
    """Opening hours in a line of Chinese (24 hours, or the weekly ranges as configured)."""
    if schedule.get("always_open", True):
        return "24小时开放"
    weekly = schedule.get("weekly")
    if not isinstance(weekly, dict) or not weekly:
        return "见驿站门口公告"
    names = {
        "mon": "周一",
        "tue": "周二",
        "wed": "周三",
        "thu": "周四",
        "fri": "周五",
        "sat": "周六",
        "sun": "周日",
    }
    parts = []
    for day, label in names.items():
        value = weekly.get(day)
        if value is None or value == "closed" or value == []:
            text = "休息"
        elif value == "24h":
            text = "全天"
        elif isinstance(value, list):
            text = "、".join(str(v) for v in value)
        else:
            text = str(value)
        parts.append(f"{label} {text}")
    # Collapse identical days into one phrase when all are the same.
    texts = {p.split(" ", 1)[1] for p in parts}
    return f"每天 {texts.pop()}" if len(texts) == 1 else "；".join(parts)
