"""A printable pass: the QR code with the member's name and the expiry written under it.

An installer prints passes for several workers at once; a bare QR code says nothing about whose it
is or until when it works. The card carries both as a visible label (in the station's time zone,
offset shown) and as PNG text chunks (`Title`, `yizhan:member_id`, `yizhan:expires`), which a
script can read back without decoding anything.

Chinese names need a CJK font: the usual Debian / Raspberry Pi OS ones are looked up (install
`fonts-wqy-zenhei` or `fonts-noto-cjk`); without one, a name the built-in font cannot draw is left
off the label (the member id always fits) rather than printed as empty boxes.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from recognizer.qr_decode import render_image

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True, slots=True)
class PassLabel:
    member_id: str
    name: str | None
    expires_at: int  # unix seconds
    timezone: str
    single_use: bool = False
    station: str | None = None

    def expiry_text(self) -> str:
        when = dt.datetime.fromtimestamp(self.expires_at, ZoneInfo(self.timezone))
        offset = when.strftime("%z")
        return f"{when:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"

    def lines(self, *, name_drawable: bool) -> list[str]:
        first = self.name if self.name and name_drawable else self.member_id
        second = f"{self.member_id} · 有效期至 valid until {self.expiry_text()}"
        if first == self.member_id:
            second = f"有效期至 valid until {self.expiry_text()}"
        extra = [part for part in ("单次 single use" if self.single_use else "", self.station or "") if part]
        return [first, second, *([" · ".join(extra)] if extra else [])]


@functools.cache
def cjk_font_path() -> str | None:
    """A font that draws Chinese, or None (fonts-wqy-zenhei / fonts-noto-cjk not installed)."""
    for candidate in FONT_CANDIDATES:
        if os.path.isfile(candidate):
            return candidate
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    try:
        found = subprocess.run(
            [fc_match, "-f", "%{file}", ":lang=zh-cn"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found if found and os.path.isfile(found) else None


def _font(size: int) -> tuple[Font, bool]:
    """A font of `size` pixels and whether it draws CJK."""
    path = cjk_font_path()
    if path is not None:
        return ImageFont.truetype(path, size), True
    return ImageFont.load_default(size), False


def render_pass_card(token: str, label: PassLabel, *, scale: int = 8, border: int = 4) -> Image.Image:
    """The QR code (`scale` pixels per module, `border` modules of quiet zone) above its label."""
    qr = Image.fromarray(render_image(token, scale=scale, border=border))
    width = qr.width
    big, cjk = _font(max(16, width // 12))
    small, _ = _font(max(12, width // 22))
    name_drawable = cjk or (label.name or "").isascii()
    lines = label.lines(name_drawable=name_drawable)
    fonts = [big] + [small] * (len(lines) - 1)
    measure = ImageDraw.Draw(qr)
    boxes = [
        tuple(round(v) for v in measure.textbbox((0, 0), text, font=font))
        for text, font in zip(lines, fonts, strict=True)
    ]
    padding = max(8, width // 40)
    card_width = max(width, *(box[2] - box[0] + 2 * padding for box in boxes))
    heights = [box[3] - box[1] for box in boxes]
    card = Image.new("L", (card_width, qr.height + sum(heights) + padding * (len(lines) + 1)), 255)
    card.paste(qr, ((card_width - width) // 2, 0))
    draw = ImageDraw.Draw(card)
    y = qr.height
    for text, font, box, height in zip(lines, fonts, boxes, heights, strict=True):
        draw.text(((card_width - (box[2] - box[0])) // 2 - box[0], y - box[1]), text, fill=0, font=font)
        y += height + padding
    return card


def write_pass_card(token: str, label: PassLabel, path: Path) -> None:
    """Write the card as a PNG whose text chunks repeat the label (name, member id, expiry)."""
    info = PngInfo()
    info.add_itxt("Title", f"{label.name or label.member_id} ({label.member_id})")
    info.add_itxt("yizhan:member_id", label.member_id)
    info.add_itxt("yizhan:name", label.name or "")
    info.add_itxt("yizhan:expires", label.expiry_text())
    info.add_itxt("yizhan:expires_at", str(label.expires_at))
    render_pass_card(token, label).save(path, format="PNG", pnginfo=info)
