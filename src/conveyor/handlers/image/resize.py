"""The resize core: one decode for every size, shrunk in the JPEG decoder where it can be.

What makes it fast, and still right:
- `draft()` lets libjpeg decode at 1/2, 1/4 or 1/8 scale (DCT scaling), chosen for the
  largest output, so a 12-megapixel photo is often never decoded at full size.
- every size is resampled with LANCZOS (and `reducing_gap`: a cheap integer box reduction
  first when the ratio is large) from the smallest image already at hand that still has two
  pixels per output pixel: the decode, or a larger output made just before.
- EXIF orientation is applied to each small output rather than the large source: it is the
  same transform `ImageOps.exif_transpose` performs, at a fraction of the cost, because
  centred crops and resampling commute with flips and quarter turns.
- outputs are converted to sRGB when the source carries another ICC profile, and are saved
  with no metadata at all (no EXIF, GPS, ICC, XMP or comments).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, ImageCms, UnidentifiedImageError

from conveyor.core.errors import PermanentError
from conveyor.handlers.image.models import OutputFormat, Size

#: Decoders a payload may reach; exotic formats stay out of the attack surface.
INPUT_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF")
FORMAT_OF_SOURCE = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp"}
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
DEFAULT_QUALITY = {"jpeg": 85, "webp": 80}

#: Resample in steps: integer box reduction down to this multiple of the target, then LANCZOS.
REDUCING_GAP = 3.0
#: A bigger output may stand in for the source when it has this many pixels per output pixel.
CASCADE_GAP = 2.0
#: Decode (via draft) to at least this multiple of the largest output.
DRAFT_GAP = 1.0

ORIENTATION_TAG = 0x0112
#: EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose).
TRANSPOSE_FOR = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_AXES = frozenset({5, 6, 7, 8})


class ImageRejected(PermanentError):
    """Not an image, a corrupt one, or one too large to decode safely."""


@dataclass(frozen=True, slots=True)
class Rendition:
    """One encoded output."""

    name: str
    data: bytes
    width: int
    height: int
    format: OutputFormat

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """The source as a viewer shows it (orientation applied)."""

    format: str
    width: int
    height: int
    orientation: int


@dataclass(frozen=True, slots=True)
class Plan:
    """How one size is cut from the raw (not yet oriented) source."""

    size: Size
    crop: tuple[float, float, float, float]  # in raw source pixels
    raw_size: tuple[int, int]  # output size before orientation
    out_size: tuple[int, int]  # output size as shown


def plan_size(size: Size, raw_w: int, raw_h: int, orientation: int) -> Plan:
    """Output dimensions and the centred crop for one size (never upscaling unless asked)."""
    swapped = orientation in SWAPS_AXES
    src_w, src_h = (raw_h, raw_w) if swapped else (raw_w, raw_h)
    if size.fit == "cover" and size.height is not None:
        # The largest centred region with the box's aspect ratio.
        crop_w = min(float(src_w), src_h * size.width / size.height)
        crop_h = crop_w * size.height / size.width
        scale = size.width / crop_w
        if scale > 1 and not size.upscale:
            out = (max(1, round(crop_w)), max(1, round(crop_h)))
        else:
            out = (size.width, size.height)
    else:
        crop_w, crop_h = float(src_w), float(src_h)
        scale = size.width / src_w
        if size.height is not None:
            scale = min(scale, size.height / src_h)
        if not size.upscale:
            scale = min(scale, 1.0)
        out = (max(1, round(src_w * scale)), max(1, round(src_h * scale)))
    # Centred crops look the same from every orientation: only the axes may swap.
    if swapped:
        crop_w, crop_h = crop_h, crop_w
    left, top = (raw_w - crop_w) / 2, (raw_h - crop_h) / 2
    raw_out = (out[1], out[0]) if swapped else out
    return Plan(size, (left, top, left + crop_w, top + crop_h), raw_out, out)


def render(
    data: bytes,
    sizes: Sequence[Size],
    format: OutputFormat | None = None,
    quality: int | None = None,
    max_pixels: int | None = None,
) -> tuple[SourceInfo, list[Rendition]]:
    """Decode `data` once and encode every size; raises ImageRejected for bad input."""
    image = open_image(data, max_pixels)
    try:
        orientation = _orientation(image)
        raw_w, raw_h = image.size
        plans = [plan_size(size, raw_w, raw_h, orientation) for size in sizes]
        source_format = image.format or "unknown"
        info = SourceInfo(
            format=source_format.lower(),
            width=raw_h if orientation in SWAPS_AXES else raw_w,
            height=raw_w if orientation in SWAPS_AXES else raw_h,
            orientation=orientation,
        )
        icc = image.info.get("icc_profile")
        _draft_for(image, plans)
        base = _decoded(image)
        icc = None if icc is None or _is_srgb(icc) else icc
        base, icc = _working_mode(base, icc)
        has_alpha = base.mode in ("RGBA", "LA")
        chosen: OutputFormat = format or FORMAT_OF_SOURCE.get(  # type: ignore[assignment]
            source_format, "png" if has_alpha else "jpeg"
        )
        done: list[tuple[Plan, Image.Image]] = [(_whole(raw_w, raw_h), base)]
        rendered: dict[str, Rendition] = {}
        # Largest first, so each smaller size can start from a bigger output instead of the
        # full decode: resampling costs in proportion to the pixels it reads.
        for plan in sorted(plans, key=lambda p: -_scale(p)[0] * _scale(p)[1]):
            source, box = _best_source(plan, done)
            out = source.resize(
                plan.raw_size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP
            )
            done.append((plan, out))
            if orientation in TRANSPOSE_FOR:
                out = out.transpose(TRANSPOSE_FOR[orientation])
            if icc is not None:
                out = _to_srgb(out, icc)
            rendered[plan.size.name] = Rendition(
                plan.size.name, _encode(out, chosen, quality), out.width, out.height, chosen
            )
        outputs = [rendered[size.name] for size in sizes]
        return info, outputs
    finally:
        image.close()


def _scale(plan: Plan) -> tuple[float, float]:
    """Output pixels per raw source pixel, across and down."""
    left, top, right, bottom = plan.crop
    return plan.raw_size[0] / (right - left), plan.raw_size[1] / (bottom - top)


def _whole(raw_w: int, raw_h: int) -> Plan:
    return Plan(
        Size(name="source", width=raw_w), (0.0, 0.0, raw_w, raw_h), (raw_w, raw_h), (raw_w, raw_h)
    )


def _best_source(
    plan: Plan, done: Sequence[tuple[Plan, Image.Image]]
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """The smallest image already made that holds the plan's crop with at least
    CASCADE_GAP source pixels per output pixel, and the crop box within it."""
    want_x, want_y = _scale(plan)
    left, top, right, bottom = plan.crop
    best: tuple[Image.Image, tuple[float, float, float, float]] | None = None
    for index, (made, image) in enumerate(done):
        m_left, m_top, m_right, m_bottom = made.crop
        has_x = image.width / (m_right - m_left)
        has_y = image.height / (m_bottom - m_top)
        inside = (
            left >= m_left - 1e-6
            and top >= m_top - 1e-6
            and right <= m_right + 1e-6
            and bottom <= m_bottom + 1e-6
        )
        enough = index == 0 or (has_x >= CASCADE_GAP * want_x and has_y >= CASCADE_GAP * want_y)
        if not (inside and enough):
            continue
        if best is None or image.width * image.height < best[0].width * best[0].height:
            box = (
                (left - m_left) * has_x,
                (top - m_top) * has_y,
                (right - m_left) * has_x,
                (bottom - m_top) * has_y,
            )
            best = (image, box)
    assert best is not None  # the decoded source always qualifies
    return best


def open_image(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """Open (header only) and check format and pixel count before any decoding."""
    limit = max_pixels or Image.MAX_IMAGE_PIXELS or 89_478_485
    try:
        image = Image.open(io.BytesIO(data), formats=_input_formats())
    except UnidentifiedImageError:
        raise ImageRejected(
            "the source is not an image in a supported format "
            f"({', '.join(f.lower() for f in _input_formats())})"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"the source image is too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"the source image is corrupt: {exc}") from None
    width, height = image.size
    if width * height > limit:
        image.close()
        raise ImageRejected(
            f"the source image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {limit:,} (PIL.Image.MAX_IMAGE_PIXELS)"
        )
    if width < 1 or height < 1:
        image.close()
        raise ImageRejected("the source image has no pixels")
    return image


@lru_cache(maxsize=1)
def _input_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in INPUT_FORMATS if f in Image.OPEN)


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not sink an otherwise fine image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _draft_for(image: Image.Image, plans: Sequence[Plan]) -> None:
    """Ask the JPEG decoder for the smallest DCT scale that still covers every output."""
    if image.format not in ("JPEG", "MPO"):
        return
    factor = max(
        max(p.raw_size[0] / (p.crop[2] - p.crop[0]), p.raw_size[1] / (p.crop[3] - p.crop[1]))
        for p in plans
    )
    if factor * DRAFT_GAP >= 0.5:
        return  # no DCT scale would keep enough pixels
    width, height = image.size
    target = (math.ceil(width * factor * DRAFT_GAP), math.ceil(height * factor * DRAFT_GAP))
    image.draft(image.mode if image.mode in ("RGB", "L") else None, target)


def _decoded(image: Image.Image) -> Image.Image:
    try:
        image.seek(0)
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"the source image is too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"the source image is corrupt or truncated: {exc}") from None
    return image


def _working_mode(image: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """A mode LANCZOS can resample well: L, LA, RGB or RGBA (palettes would fall back to
    nearest neighbour). CMYK goes through its ICC profile to sRGB when it has one."""
    mode = image.mode
    if mode in ("RGB", "L", "RGBA", "LA"):
        return image, icc
    if mode == "CMYK" and icc is not None:
        converted = _to_srgb(image, icc)
        return (converted if converted.mode == "RGB" else image.convert("RGB")), None
    if mode in ("P", "PA"):
        alpha = mode == "PA" or image.has_transparency_data
        return image.convert("RGBA" if alpha else "RGB"), icc
    if mode == "1":
        return image.convert("L"), icc
    if mode.startswith("I;16") or mode == "I":
        # 16-bit greys: scale to 8 bits rather than clip everything above 255 to white.
        return image.convert("I").point(lambda v: v * (1 / 256)).convert("L"), icc
    if mode in ("RGBa", "La"):
        return image.convert(mode[:-1] + "A"), icc
    return image.convert("RGB"), icc


def _encode(image: Image.Image, format: OutputFormat, quality: int | None) -> bytes:
    if format == "jpeg" and image.mode not in ("RGB", "L"):
        image = _flatten(image)
    elif format == "webp" and image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    # Saving reads some metadata (comments, ICC) from `info`: clear it so nothing leaks.
    image.info = {}
    options: dict[str, Any]
    if format == "jpeg":
        # optimize (Huffman tables fitted to the image) is nearly free and saves 5-10%;
        # progressive saves little more and doubles the encoding time.
        options = {"quality": quality or DEFAULT_QUALITY["jpeg"], "optimize": True}
    elif format == "webp":
        options = {"quality": quality or DEFAULT_QUALITY["webp"], "method": 4}
    else:
        options = {"compress_level": 6}
    buffer = io.BytesIO()
    image.save(buffer, format=format.upper(), **options)
    return buffer.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    """Composite transparency onto white: JPEG has no alpha, and black backgrounds look broken."""
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _is_srgb(icc: bytes) -> bool:
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return True  # unreadable: treat as sRGB rather than guess
    return "srgb" in description.lower()


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    if image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        converted = ImageCms.profileToProfile(
            image,
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            _srgb(),
            outputMode="RGBA" if image.mode == "RGBA" else "RGB",
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: keep the pixels as they are
    return converted if converted is not None else image
