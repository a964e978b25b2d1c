"""The Pillow core: geometry, orientation, modes, formats, metadata and limits."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat, PngImagePlugin

from conveyor import PermanentError
from conveyor.handlers.image.models import Size
from conveyor.handlers.image.resize import (
    ImageRejected,
    _draft_for,
    _is_srgb,
    open_image,
    plan_size,
    render,
)

RED, GREEN, BLUE, WHITE = (230, 20, 20), (20, 200, 20), (20, 20, 230), (250, 250, 250)


def quadrants(width: int, height: int) -> Image.Image:
    """Four colours, one per quadrant: any flip or turn shows."""
    image = Image.new("RGB", (width, height), WHITE)
    image.paste(RED, (0, 0, width // 2, height // 2))
    image.paste(GREEN, (width // 2, 0, width, height // 2))
    image.paste(BLUE, (0, height // 2, width // 2, height))
    return image


def encoded(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(image, exif=exif, quality=95)


def colour_at(image: Image.Image, fx: float, fy: float) -> tuple[int, ...]:
    rgb = image.convert("RGB")
    return rgb.getpixel((int(fx * (rgb.width - 1)), int(fy * (rgb.height - 1))))  # type: ignore[return-value]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a[:3], b[:3], strict=True))


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- geometry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "raw", "orientation", "out"),
    [
        (Size(name="a", width=1200), (2400, 1600), 1, (1200, 800)),
        (Size(name="a", width=1200), (2400, 1600), 6, (1200, 1800)),
        (Size(name="a", width=1200, height=600), (2400, 1600), 1, (900, 600)),
        (Size(name="a", width=200, height=200, fit="cover"), (2400, 1600), 1, (200, 200)),
        (Size(name="a", width=300, height=100, fit="cover"), (2400, 1600), 8, (300, 100)),
        (Size(name="a", width=5000), (2400, 1600), 1, (2400, 1600)),  # never upscaled
        (Size(name="a", width=4800, upscale=True), (2400, 1600), 1, (4800, 3200)),
        (Size(name="a", width=500, height=500, fit="cover"), (400, 100), 1, (100, 100)),
        (
            Size(name="a", width=500, height=500, fit="cover", upscale=True),
            (400, 100),
            1,
            (500, 500),
        ),
        (Size(name="a", width=1), (10000, 10), 1, (1, 1)),
    ],
)
def test_plan_sizes(
    size: Size, raw: tuple[int, int], orientation: int, out: tuple[int, int]
) -> None:
    plan = plan_size(size, raw[0], raw[1], orientation)
    assert plan.out_size == out
    swapped = orientation in (5, 6, 7, 8)
    assert plan.raw_size == ((out[1], out[0]) if swapped else out)


def test_cover_crops_around_the_centre() -> None:
    plan = plan_size(Size(name="c", width=100, height=100, fit="cover"), 400, 200, 1)
    assert plan.crop == (100.0, 0.0, 300.0, 200.0)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_exif_transpose(orientation: int) -> None:
    """Orientation applied after resizing gives what ImageOps.exif_transpose then resize gives."""
    data = with_orientation(quadrants(800, 400), orientation)
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    sizes = [
        Size(name="contain", width=200),
        Size(name="cover", width=120, height=60, fit="cover"),
    ]
    info, (contain, cover) = render(data, sizes)
    assert (info.width, info.height) == reference.size
    for rendition in (contain, cover):
        image = opened(rendition.data)
        assert image.size == (rendition.width, rendition.height)
        expected = ImageOps.fit(reference, image.size, Image.Resampling.LANCZOS)
        if rendition.name == "contain":
            expected = reference.resize(image.size, Image.Resampling.LANCZOS)
        for fx, fy in ((0.2, 0.2), (0.8, 0.2), (0.2, 0.8), (0.8, 0.8)):
            assert close(colour_at(image, fx, fy), colour_at(expected, fx, fy)), (fx, fy)
    assert opened(contain.data).size == ((200, 400) if orientation >= 5 else (200, 100))


def test_draft_decodes_big_jpegs_at_a_reduced_scale() -> None:
    data = encoded(quadrants(4000, 3000), quality=80)
    image = open_image(data)
    plans = [plan_size(Size(name="s", width=800), 4000, 3000, 1)]
    _draft_for(image, plans)
    assert image.size == (1000, 750)  # 1/4 scale still covers 800 wide
    image = open_image(data)
    _draft_for(image, [plan_size(Size(name="s", width=3000), 4000, 3000, 1)])
    assert image.size == (4000, 3000)  # nothing smaller would do


def test_outputs_from_a_larger_output_match_direct_resampling() -> None:
    source = quadrants(2000, 1500).resize((2000, 1500))
    noise = Image.effect_noise((2000, 1500), 30).convert("RGB")
    source = ImageChops.add(source, noise, scale=1.5)
    data = encoded(source, quality=95)
    sizes = [Size(name="big", width=1000), Size(name="small", width=250)]
    _, (_, small) = render(data, sizes)
    direct = opened(data).resize((250, 188), Image.Resampling.LANCZOS)
    diff = ImageStat.Stat(ImageChops.difference(opened(small.data).convert("RGB"), direct))
    assert max(diff.mean) < 4  # mean absolute difference per channel, out of 255


# --- modes and formats ------------------------------------------------------------------------


def test_default_format_follows_the_source() -> None:
    size = [Size(name="s", width=50)]
    assert render(encoded(quadrants(100, 100)), size)[1][0].format == "jpeg"
    assert render(encoded(quadrants(100, 100), "PNG"), size)[1][0].format == "png"
    assert render(encoded(quadrants(100, 100), "WEBP"), size)[1][0].format == "webp"
    assert render(encoded(quadrants(100, 100), "BMP"), size)[1][0].format == "jpeg"
    transparent_gif = encoded(Image.new("RGBA", (100, 100), (0, 0, 0, 0)), "GIF")
    assert render(transparent_gif, size)[1][0].format == "png"


@pytest.mark.parametrize(("fmt", "pil"), [("jpeg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")])
def test_explicit_formats(fmt: str, pil: str) -> None:
    _, (out,) = render(encoded(quadrants(300, 200)), [Size(name="s", width=150)], fmt)  # type: ignore[arg-type]
    assert opened(out.data).format == pil
    assert out.content_type == f"image/{fmt}"
    assert out.extension == {"jpeg": "jpg"}.get(fmt, fmt)


def test_quality_changes_the_size() -> None:
    data = encoded(Image.effect_noise((600, 400), 60).convert("RGB"))
    sizes = [Size(name="s", width=600)]
    low = render(data, sizes, "jpeg", 30)[1][0]
    high = render(data, sizes, "jpeg", 95)[1][0]
    assert len(low.data) < len(high.data) * 0.7


def test_transparency_is_kept_in_png_and_flattened_on_white_in_jpeg() -> None:
    image = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (50, 50, 150, 150))
    data = encoded(image, "PNG")
    png = opened(render(data, [Size(name="s", width=100)], "png")[1][0].data)
    assert png.mode == "RGBA" and png.getpixel((5, 5))[3] == 0  # type: ignore[index]
    jpeg = opened(render(data, [Size(name="s", width=100)], "jpeg")[1][0].data)
    assert jpeg.mode == "RGB"
    assert close(jpeg.getpixel((5, 5)), (255, 255, 255), 10)  # type: ignore[arg-type]
    assert close(jpeg.getpixel((50, 50)), (200, 0, 0))  # type: ignore[arg-type]


def test_palette_images_are_resampled_in_full_colour() -> None:
    palette = quadrants(200, 200).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    out = opened(render(encoded(palette, "PNG"), [Size(name="s", width=100)])[1][0].data)
    assert out.mode == "RGB"
    assert close(colour_at(out, 0.25, 0.25), RED)


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (200, 100), (0, 255, 255, 0))  # red in CMYK
    out = opened(render(encoded(cmyk), [Size(name="s", width=100)])[1][0].data)
    assert out.mode == "RGB"
    assert close(colour_at(out, 0.5, 0.5), (255, 0, 0), 60)


def test_sixteen_bit_greys_are_scaled_not_clipped() -> None:
    grey = Image.new("I;16", (64, 64), 32768)
    out = opened(render(encoded(grey, "PNG"), [Size(name="s", width=32)])[1][0].data)
    assert out.mode == "L"
    assert 120 <= out.getpixel((10, 10)) <= 136  # type: ignore[operator]


def test_metadata_is_stripped() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif[0x0112] = 1
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 29.0)  # GPS latitude
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encoded(quadrants(400, 300), exif=exif, icc_profile=icc, comment=b"secret note")
    assert "exif" in Image.open(io.BytesIO(data)).info
    for fmt in ("jpeg", "png", "webp"):
        out = opened(render(data, [Size(name="s", width=200)], fmt)[1][0].data)  # type: ignore[arg-type]
        assert not set(out.info) & {"exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"}
        assert len(out.getexif()) == 0


def test_png_text_chunks_are_dropped() -> None:
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Author", "someone")
    data = encoded(quadrants(100, 100), "PNG", pnginfo=meta)
    out = opened(render(data, [Size(name="s", width=50)], "png")[1][0].data)
    assert "Author" not in out.info


def rgb_profile(name: str, primaries: list[tuple[float, float, float]]) -> bytes:
    """A minimal ICC v2 matrix/TRC RGB profile (gamma 2.2, D50 white)."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    text = name.encode() + b"\0"
    description = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(78)
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)) + bytes(2)
    tags = [
        (b"desc", description),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        *((sig, xyz(*p)) for sig, p in zip((b"rXYZ", b"gXYZ", b"bXYZ"), primaries, strict=True)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text" + bytes(4) + b"none" + bytes(4)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = (
        struct.pack(">I", offset + len(data))
        + bytes(4)
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + bytes(48)
    )
    return header + struct.pack(">I", len(tags)) + table + data


def test_other_colour_profiles_are_converted_to_srgb() -> None:
    """A profile whose red channel means sRGB's green: after conversion the pixels say green,
    and no profile is needed (or kept) to show them right."""
    red, green, blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
    icc = rgb_profile("Swapped primaries", [green, red, blue])
    data = encoded(Image.new("RGB", (200, 100), (255, 0, 0)), icc_profile=icc, quality=95)
    for fmt in ("jpeg", "png"):
        out = opened(render(data, [Size(name="s", width=100)], fmt)[1][0].data)  # type: ignore[arg-type]
        assert "icc_profile" not in out.info
        assert close(colour_at(out, 0.5, 0.5), (0, 255, 0), 30)


def test_srgb_profile_detection() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert _is_srgb(srgb)


# --- refusals ---------------------------------------------------------------------------------


def test_not_an_image() -> None:
    with pytest.raises(ImageRejected, match="not an image") as caught:
        render(b"<svg xmlns='http://www.w3.org/2000/svg'/>", [Size(name="s", width=10)])
    assert isinstance(caught.value, PermanentError)


def test_formats_outside_the_list_are_refused() -> None:
    with pytest.raises(ImageRejected, match="not an image"):
        render(encoded(quadrants(50, 50), "PCX"), [Size(name="s", width=10)])


def test_truncated_jpeg_is_corrupt() -> None:
    data = encoded(Image.effect_noise((800, 600), 50).convert("RGB"))
    with pytest.raises(ImageRejected, match="corrupt"):
        render(data[: len(data) // 3], [Size(name="s", width=100)])


def test_pixel_limit() -> None:
    with pytest.raises(ImageRejected, match="limit"):
        render(encoded(quadrants(200, 100)), [Size(name="s", width=10)], max_pixels=10_000)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares huge dimensions in a few bytes: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [10_000, 50_000])
def test_decompression_bombs_are_refused_before_decoding(side: int) -> None:
    with pytest.raises(ImageRejected, match=r"too large|limit"):
        render(png_header_only(side, side), [Size(name="s", width=100)])
