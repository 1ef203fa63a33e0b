"""Synthetic /biz/-style pictures for the demo data, drawn with Pillow: candle charts, wojak-ish memes with
overlay text, and plain screenshots. Same spec, same PNG bytes (no timestamps, seeded randomness)."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw, ImageFont

SIZE = (384, 288)
GREEN, RED = (38, 166, 154), (239, 83, 80)
FACES = {"pink": (244, 166, 184), "green": (132, 204, 122), "plain": (241, 211, 179)}


@dataclass(frozen=True, slots=True)
class ImageSpec:
    kind: str  # chart_up | chart_down | chart_flat | wojak_pink | wojak_green | wojak_plain | fine | screenshot
    seed: int
    caption: str = ""  # big overlay text (memes) or title (charts)
    lines: tuple[str, ...] = ()  # screenshot body


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def render(spec: ImageSpec) -> bytes:
    rng = random.Random(spec.seed)
    if spec.kind.startswith("chart_"):
        image = _chart(rng, spec.kind.removeprefix("chart_"), spec.caption)
    elif spec.kind.startswith("wojak_"):
        image = _wojak(rng, spec.kind.removeprefix("wojak_"), spec.caption)
    elif spec.kind == "fine":
        image = _fine(rng, spec.caption)
    elif spec.kind == "screenshot":
        image = _screenshot(rng, spec.caption, spec.lines)
    else:
        raise ValueError(f"unknown demo image kind {spec.kind}")
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=3)  # fast; demo seeding stays quick
    return out.getvalue()


def drawn_text(spec: ImageSpec) -> str:
    """Every word the picture for `spec` shows, one line per text drawn: what OCR should read on it."""
    if spec.kind.startswith("chart_"):
        candles = _candles(random.Random(spec.seed), spec.kind.removeprefix("chart_"))
        return f"{spec.caption or 'BTC/USDT 1H'}\n{_change(candles):+.1f}%"
    if spec.kind == "screenshot":
        return "\n".join((spec.caption, *spec.lines))
    if spec.kind == "fine":
        return spec.caption or "THIS IS FINE"
    return spec.caption


def _candles(rng: random.Random, trend: str) -> list[tuple[float, float, float, float]]:
    drift = {"up": 1.0, "down": -1.1, "flat": 0.0}[trend]
    price, candles = 100.0, []
    for _ in range(32):
        # A flat chart pulls back towards its start so it never reads as a trend.
        pull = (100.0 - price) * 0.3 if trend == "flat" else 0.0
        move = drift * rng.uniform(0.5, 2.5) + pull + rng.gauss(0, 1.6)
        open_, close = price, price + move
        candles.append((open_, close, max(open_, close) + rng.uniform(0, 1.5), min(open_, close) - rng.uniform(0, 1.5)))
        price = close
    return candles


def _change(candles: list[tuple[float, float, float, float]]) -> float:
    return (candles[-1][1] - candles[0][0]) / candles[0][0] * 100


def _chart(rng: random.Random, trend: str, title: str) -> Image.Image:
    image = Image.new("RGB", SIZE, (19, 23, 34))
    draw = ImageDraw.Draw(image)
    width, height = SIZE
    for y in range(40, height, 40):
        draw.line([(0, y), (width, y)], fill=(42, 46, 57))
    candles = _candles(rng, trend)
    top, bottom = max(c[2] for c in candles), min(c[3] for c in candles)

    def y_of(value: float) -> float:
        return 40 + (top - value) / max(top - bottom, 1e-6) * (height - 60)

    step = (width - 20) / len(candles)
    for index, (open_, close, high, low) in enumerate(candles):
        x = 10 + index * step + step / 2
        colour = GREEN if close >= open_ else RED
        draw.line([(x, y_of(high)), (x, y_of(low))], fill=colour, width=1)
        body_top, body_bottom = sorted((y_of(open_), y_of(close)))
        draw.rectangle([x - step * 0.35, body_top, x + step * 0.35, max(body_bottom, body_top + 1)], fill=colour)
    change = _change(candles)
    draw.text((10, 8), title or "BTC/USDT 1H", font=_font(16), fill=(209, 212, 220))
    draw.text((width - 90, 8), f"{change:+.1f}%", font=_font(16), fill=GREEN if change >= 0 else RED)
    return image


def _caption(draw: ImageDraw.ImageDraw, text: str, y: int, size: int = 44) -> None:
    """Impact-style meme text: white with a black outline, centred, shrunk until it fits."""
    width = SIZE[0]
    while size > 14 and draw.textlength(text, font=_font(size)) > width - 16:
        size -= 2
    x = (width - draw.textlength(text, font=_font(size))) / 2
    draw.text((x, y), text, font=_font(size), fill="white", stroke_width=3, stroke_fill="black")


def _wojak(rng: random.Random, mood: str, caption: str) -> Image.Image:
    background = tuple(rng.randint(200, 240) for _ in range(3))
    image = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(image)
    cx, cy = SIZE[0] // 2 + rng.randint(-20, 20), 165
    face = FACES[mood]
    draw.ellipse([cx - 70, cy - 85, cx + 70, cy + 85], fill=face, outline="black", width=3)
    for dx in (-28, 28):
        draw.ellipse([cx + dx - 9, cy - 30, cx + dx + 9, cy - 18], fill="white", outline="black", width=2)
        draw.ellipse([cx + dx - 3, cy - 27, cx + dx + 3, cy - 21], fill="black")
    if mood == "pink":
        draw.arc([cx - 30, cy + 25, cx + 30, cy + 60], 200, 340, fill="black", width=3)
        draw.line([(cx - 30, cy - 14), (cx - 34, cy + 20)], fill=(90, 160, 255), width=4)  # tears
    elif mood == "green":
        draw.arc([cx - 32, cy + 5, cx + 32, cy + 45], 20, 160, fill="black", width=3)
    else:
        draw.line([(cx - 22, cy + 35), (cx + 22, cy + 35)], fill="black", width=3)
    if caption:
        _caption(draw, caption, 10)
    return image


def _fine(rng: random.Random, caption: str) -> Image.Image:
    image = Image.new("RGB", SIZE, (250, 196, 120))
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x = rng.randint(0, SIZE[0])
        h = rng.randint(40, 120)
        draw.polygon([(x - 18, SIZE[1]), (x + 18, SIZE[1]), (x + rng.randint(-8, 8), SIZE[1] - h)],
                     fill=(235, rng.randint(60, 140), 20))
    draw.ellipse([150, 110, 240, 190], fill=(214, 160, 90), outline="black", width=3)  # the dog
    draw.rectangle([140, 185, 250, 215], fill=(160, 110, 60))  # the table
    _caption(draw, caption or "THIS IS FINE", 12)
    return image


def _screenshot(rng: random.Random, title: str, lines: tuple[str, ...]) -> Image.Image:
    image = Image.new("RGB", SIZE, (246, 246, 244))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, SIZE[0], 30], fill=(rng.randint(40, 80), rng.randint(60, 110), rng.randint(120, 180)))
    draw.text((10, 7), title, font=_font(15), fill="white")
    y = 44
    for line in lines:
        draw.text((12, y), line, font=_font(14), fill=(40, 40, 40))
        y += 24
    return image
