"""`resize_image` jobs run through the real engine (SQLite and PostgreSQL), reading and
writing through moto's S3 server, file storage, and loopback HTTP servers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from image_samples import WebServer, banded_photo, jpeg_bytes
from PIL import Image

import conveyor

RED, GREEN = (220, 0, 0), (0, 160, 0)


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def run(app: conveyor.Conveyor, payload: dict[str, Any], **options: Any) -> conveyor.Job:
    job = app.submit("resize_image", payload, **options)
    app.run_burst()
    return app.get(job.id)


def photo_payload(source: str, destination: str) -> dict[str, Any]:
    return {
        "source": source,
        "destination": destination,
        "sizes": [
            {"name": "thumb", "width": 200, "height": 200, "fit": "cover"},
            {"name": "large", "width": 1200},
        ],
    }


def test_exif_rotated_photo_to_s3(image_app: Any, s3: Any, bucket: str) -> None:
    """A 2400x1600 camera JPEG whose EXIF says "rotate 90° clockwise" (orientation 6) comes out
    upright: a 200x200 cover thumbnail and a 1200-wide contain size, checked from S3."""
    s3.put_object(
        Bucket=bucket,
        Key="uploads/photo.jpg",
        Body=jpeg_bytes(banded_photo(2400, 1600), orientation=6),
    )
    app = image_app()
    job = run(app, photo_payload(f"s3://{bucket}/uploads/photo.jpg", f"s3://{bucket}/thumbs/p1-"))
    assert job.status == "succeeded", job.error
    outputs = {item["name"]: item for item in job.result["outputs"]}
    assert [item["name"] for item in job.result["outputs"]] == ["thumb", "large"]
    assert outputs["thumb"]["url"] == f"s3://{bucket}/thumbs/p1-thumb.jpg"
    assert outputs["large"]["url"] == f"s3://{bucket}/thumbs/p1-large.jpg"
    assert job.result["source"]["width"] == 1600 and job.result["source"]["height"] == 2400

    expected = {"thumb": (200, 200), "large": (1200, 1800)}
    for name, (width, height) in expected.items():
        stored = s3.get_object(Bucket=bucket, Key=f"thumbs/p1-{name}.jpg")
        data = stored["Body"].read()
        assert stored["ContentType"] == "image/jpeg"
        assert outputs[name]["bytes"] == len(data) == stored["ContentLength"]
        assert (outputs[name]["width"], outputs[name]["height"]) == (width, height)
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG"
        assert image.size == (width, height)
        # Upright: the raw top band now runs down the right edge, and nothing asks a viewer
        # to rotate again (no EXIF at all: metadata is stripped).
        assert len(image.getexif()) == 0
        rgb = image.convert("RGB")
        assert near(rgb.getpixel((width - 3, height // 2)), RED)
        assert near(rgb.getpixel((2, height // 2)), GREEN)
        assert near(rgb.getpixel((width // 2, 2)), GREEN)
    assert job.progress and job.progress["done"] == job.progress["total"] == 4


def test_file_storage_round_trip_with_webp(image_app: Any, storage_dir: Path) -> None:
    source = storage_dir / "in" / "logo.png"
    source.parent.mkdir()
    logo = Image.new("RGBA", (640, 480), (0, 0, 255, 128))
    logo.save(source)
    app = image_app()
    job = run(
        app,
        {
            "source": f"file://{source}",
            "destination": f"file://{storage_dir}/out/logo_",
            "sizes": [{"name": "small", "width": 320}, {"name": "tiny", "width": 64, "height": 64}],
            "format": "webp",
            "quality": 70,
        },
    )
    assert job.status == "succeeded", job.error
    small, tiny = job.result["outputs"]
    assert small["url"] == f"file://{storage_dir}/out/logo_small.webp"
    assert small["content_type"] == "image/webp"
    with Image.open(storage_dir / "out" / "logo_small.webp") as image:
        assert image.format == "WEBP" and image.size == (320, 240) and image.mode == "RGBA"
    assert (tiny["width"], tiny["height"]) == (64, 48)
    assert (storage_dir / "out" / "logo_tiny.webp").stat().st_size == tiny["bytes"]


def test_small_source_is_not_upscaled_unless_asked(image_app: Any, storage_dir: Path) -> None:
    (storage_dir / "small.jpg").write_bytes(jpeg_bytes(Image.new("RGB", (300, 200), GREEN)))
    app = image_app()
    job = run(
        app,
        {
            "source": f"file://{storage_dir}/small.jpg",
            "destination": f"file://{storage_dir}/",
            "sizes": [
                {"name": "keep", "width": 1200},
                {"name": "grow", "width": 600, "upscale": True},
                {"name": "square", "width": 400, "height": 400, "fit": "cover"},
            ],
        },
    )
    assert job.status == "succeeded", job.error
    sizes = {o["name"]: (o["width"], o["height"]) for o in job.result["outputs"]}
    assert sizes == {"keep": (300, 200), "grow": (600, 400), "square": (200, 200)}


def test_rerun_skips_sizes_already_stored(image_app: Any, s3: Any, bucket: str) -> None:
    """A re-run after a crash: one size was stored and recorded as done (it is not uploaded
    again), another was interrupted mid-upload (uploads are idempotent: it is redone)."""
    s3.put_object(Bucket=bucket, Key="in.jpg", Body=jpeg_bytes(banded_photo(800, 600)))
    app = image_app()
    job = app.submit("resize_image", photo_payload(f"s3://{bucket}/in.jpg", f"s3://{bucket}/o/"))
    # What a first attempt that died would have left behind:
    app.store.effect_begin(f"resize:{job.id}:thumb", job.id, 0, repeat=False)
    app.store.effect_finish(f"resize:{job.id}:thumb", succeeded=True)
    s3.put_object(Bucket=bucket, Key="o/thumb.jpg", Body=b"stored by the first attempt")
    app.store.effect_begin(f"resize:{job.id}:large", job.id, 0, repeat=False)
    app.run_burst()
    job = app.get(job.id)
    assert job.status == "succeeded", job.error
    thumb = s3.get_object(Bucket=bucket, Key="o/thumb.jpg")["Body"].read()
    assert thumb == b"stored by the first attempt"
    large = s3.get_object(Bucket=bucket, Key="o/large.jpg")["Body"].read()
    assert Image.open(io.BytesIO(large)).size == (800, 600)


def test_output_left_by_another_job_is_replaced(image_app: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="in.jpg", Body=jpeg_bytes(banded_photo(400, 300)))
    s3.put_object(Bucket=bucket, Key="o/thumb.jpg", Body=b"stale")
    job = run(image_app(), photo_payload(f"s3://{bucket}/in.jpg", f"s3://{bucket}/o/"))
    assert job.status == "succeeded", job.error
    thumb = s3.get_object(Bucket=bucket, Key="o/thumb.jpg")["Body"].read()
    assert Image.open(io.BytesIO(thumb)).size == (200, 200)


def test_http_source_when_private_urls_are_allowed(
    image_app: Any, web: WebServer, storage_dir: Path
) -> None:
    web.routes["/img.jpg"] = (
        200,
        {"Content-Type": "image/jpeg"},
        jpeg_bytes(banded_photo(640, 480)),
    )
    web.routes["/moved"] = (302, {"Location": "/img.jpg"}, b"")
    app = image_app(allow_private_urls=True)
    job = run(app, photo_payload(web.url("/moved"), f"file://{storage_dir}/web-"))
    assert job.status == "succeeded", job.error
    assert [path for path, _ in web.requests] == ["/moved", "/img.jpg"]
    assert (storage_dir / "web-large.jpg").exists()


# --- failures end where they should ----------------------------------------------------------


def assert_dead_permanent(job: conveyor.Job, *fragments: str) -> None:
    assert job.status == "dead", (job.status, job.error)
    assert job.attempts == 1
    assert job.executions[-1].outcome == "permanent_error"
    for fragment in fragments:
        assert fragment in (job.error or ""), job.error


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("https://127.1/a.jpg", "loopback"),
        ("https://2130706433/a.jpg", "loopback"),
        ("https://[::ffff:127.0.0.1]/a.jpg", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://10.0.0.8/a.jpg", "private"),
        ("http://93.184.216.34/a.jpg", "only https"),
    ],
)
def test_forbidden_https_source_ends_dead(
    image_app: Any, storage_dir: Path, source: str, reason: str
) -> None:
    job = run(image_app(), photo_payload(source, f"file://{storage_dir}/x-"))
    assert_dead_permanent(job, reason)


def test_corrupt_image_ends_dead(image_app: Any, s3: Any, bucket: str) -> None:
    good = jpeg_bytes(banded_photo(800, 600))
    s3.put_object(Bucket=bucket, Key="truncated.jpg", Body=good[: len(good) // 2])
    s3.put_object(Bucket=bucket, Key="text.jpg", Body=b"this is not an image at all")
    app = image_app()
    truncated = run(app, photo_payload(f"s3://{bucket}/truncated.jpg", f"s3://{bucket}/o/"))
    assert_dead_permanent(truncated, "corrupt")
    text = run(app, photo_payload(f"s3://{bucket}/text.jpg", f"s3://{bucket}/o/"))
    assert_dead_permanent(text, "not an image")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="o/")


def test_missing_object_ends_dead(image_app: Any, bucket: str) -> None:
    job = run(image_app(), photo_payload(f"s3://{bucket}/absent.jpg", f"s3://{bucket}/o/"))
    assert_dead_permanent(job, "no object", "absent.jpg")


def test_file_url_outside_storage_is_refused(image_app: Any, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(jpeg_bytes(banded_photo(100, 100)))
    job = run(image_app(), photo_payload(f"file://{outside}", f"file://{tmp_path}/storage/"))
    assert_dead_permanent(job, "outside the storage directory")


def test_throttled_storage_is_retried(image_app: Any, faulty_s3: Any, storage_dir: Path) -> None:
    faulty_s3.status, faulty_s3.code = 503, "SlowDown"
    app = image_app()
    job = run(app, photo_payload("s3://media/in.jpg", f"file://{storage_dir}/"), max_attempts=2)
    assert job.status == "dead"
    assert [e.outcome for e in job.executions] == ["retryable_error", "retryable_error"]
    assert "SlowDown" in (job.error or "")
