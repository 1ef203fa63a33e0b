"""What the serverless worker accepts: {text, image, subject?}, the image as an http(s) URL or base64 data.

Every prediction reads the image and the text together, so both are required, and the text follows the one input
rule of training and scoring (core.model.chat_format.input_text: HTML cleaned as the store cleans it, never
empty). Bad input is a one-line BizsentError naming the field and what to send instead; it is raised before the
model is touched.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import httpx
from bizsent.core.collect.html_text import clean_text
from bizsent.core.collect.images import inspect_bytes
from bizsent.core.errors import BizsentError
from bizsent.core.model.chat_format import input_text
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# RunPod caps a runsync payload at 20 MB; base64 grows data by a third, so 10 MiB of image fits with the text.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 20_000  # far above a 4chan post (2,000 characters); bounds the prompt a request can make
URL_TIMEOUT_S = 10.0
IMAGE_HELP = "an http(s) URL or base64 image data (JPEG, PNG, GIF or WebP)"


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_TEXT_CHARS)
    image: str = Field(min_length=1)
    subject: str = Field("", max_length=1_000)


@dataclass(frozen=True, slots=True)
class Post:
    text: str
    subject: str
    image: bytes  # the image file's bytes, checked to decode as a still image


def parse_request(payload: object) -> PredictRequest:
    if not isinstance(payload, dict):
        raise BizsentError(f"input must be an object {{\"text\": ..., \"image\": {IMAGE_HELP}}}")
    try:
        return PredictRequest.model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        if first["type"] == "missing":
            need = IMAGE_HELP if field == "image" else "a string (the post's text)"
            raise BizsentError(f"input needs \"{field}\": {need}; every prediction reads the image and the text "
                               "together") from None
        if first["type"] == "extra_forbidden":
            raise BizsentError(f"input has an unknown field \"{field}\"; send only text, image and subject"
                               ) from None
        raise BizsentError(f"input field \"{field}\": {first['msg'].lower()}") from None


def decode_base64(data: str) -> bytes:
    if data.startswith("data:"):
        header, _, data = data.partition(",")
        if not header.endswith(";base64"):
            raise BizsentError("image data URL must be base64 (data:image/...;base64,...)")
    compact = "".join(data.split())
    if len(compact) > (MAX_IMAGE_BYTES + 2) // 3 * 4:
        raise BizsentError(f"image is larger than {MAX_IMAGE_BYTES // 2**20} MiB; send a smaller picture")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise BizsentError(f"image is neither an http(s) URL nor valid base64 data; send {IMAGE_HELP}") from None


def fetch_image(url: str, timeout_s: float = URL_TIMEOUT_S) -> bytes:
    """The bytes at an http(s) URL, at most MAX_IMAGE_BYTES, within `timeout_s` per network step."""
    try:
        with httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True) as response:
            if response.status_code != 200:
                raise BizsentError(f"image URL answered HTTP {response.status_code}; send a URL that serves the "
                                   "picture, or the picture as base64")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > MAX_IMAGE_BYTES:
                raise BizsentError(f"image at the URL is larger than {MAX_IMAGE_BYTES // 2**20} MiB")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise BizsentError(f"image at the URL is larger than {MAX_IMAGE_BYTES // 2**20} MiB")
    except httpx.TimeoutException:
        raise BizsentError(f"image URL gave no answer within {timeout_s:g} s; send the picture as base64"
                           ) from None
    except httpx.HTTPError as exc:
        raise BizsentError(f"image URL could not be fetched ({type(exc).__name__}); check the address") from None
    return bytes(data)


def image_bytes(image: str) -> bytes:
    """The image's bytes from an http(s) URL or base64 data; any other URL scheme is refused."""
    head = image.lstrip()[:16].lower()
    if head.startswith(("http://", "https://")):
        return fetch_image(image.strip())
    scheme, sep, _ = head.partition("://")
    if sep and scheme.isalnum():
        raise BizsentError(f"image URL scheme {scheme}:// is not allowed; send {IMAGE_HELP}")
    return decode_base64(image)


def read_post(payload: object) -> Post:
    """The post in a job's input, its image fetched or decoded and checked to be a readable still image."""
    request = parse_request(payload)
    input_text(request.text)  # an empty post is refused before its image is fetched
    data = image_bytes(request.image)
    frame, reason = inspect_bytes(data)
    if frame is None:
        raise BizsentError(f"image is not usable: {reason}; send {IMAGE_HELP}")
    return Post(input_text(request.text), clean_text(request.subject), data)
