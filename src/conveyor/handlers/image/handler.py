"""The `resize_image` job: read the source, render every size, store each one once."""

from __future__ import annotations

from typing import Any

from conveyor import JobCancelled, JobContext, handler
from conveyor.core.settings import Settings
from conveyor.handlers.image.fetch import FetchPolicy, ForbiddenUrl, fetch_url
from conveyor.handlers.image.models import Output, ResizeImage, ResizeResult
from conveyor.handlers.image.resize import render
from conveyor.storage import Storage, open_storage, parse_blob_url

#: Largest source accepted, from any scheme (a 100-megapixel JPEG is about 30 MB).
MAX_SOURCE_BYTES = 64 * 1024 * 1024
#: Total time an https fetch may take, redirects included.
FETCH_TIMEOUT = 30.0


# A plain (threaded) handler: Pillow releases the GIL while it decodes, resamples and encodes,
# so concurrent jobs in one worker use every core without a process pool.
@handler(
    "resize_image",
    payload=ResizeImage,
    max_attempts=5,
    timeout=300,
    description="Resize an image (s3://, file:// or https://) into several sizes in storage.",
)
def resize_image(payload: ResizeImage, ctx: JobContext) -> dict[str, Any]:
    """Resize one image into every requested size, stored at destination + name + ext."""
    total = len(payload.sizes) + 2
    ctx.progress(0, total, stage="fetching")
    storages: dict[str, Storage] = {}
    data = read_source(payload.source, ctx.app.settings, storages)
    ctx.progress(1, total, stage="resizing")
    info, renditions = render(data, payload.sizes, payload.format, payload.quality)
    ctx.progress(2, total, stage="storing")
    outputs: list[Output] = []
    for done, rendition in enumerate(renditions, start=3):
        if ctx.cancelled:
            raise JobCancelled(f"stopped after storing {len(outputs)} of {len(renditions)} sizes")
        url = f"{payload.destination}{rendition.name}.{rendition.extension}"
        storage, key = locate(url, ctx.app.settings, storages)
        # Keyed by job: a re-run skips what this job already stored, yet overwrites what an
        # earlier job left at the same URL. Storing the same bytes twice is harmless, so an
        # upload a crash interrupted is repeated rather than left uncertain.
        with ctx.once(f"resize:{ctx.job_id}:{rendition.name}", on_uncertain="repeat") as first:
            if first or not storage.exists(key):
                storage.put(key, rendition.data, rendition.content_type)
        outputs.append(
            Output(
                name=rendition.name,
                url=storage.url_for(key),
                width=rendition.width,
                height=rendition.height,
                bytes=len(rendition.data),
                content_type=rendition.content_type,
            )
        )
        ctx.progress(done, total, stage="storing")
    source = {
        "url": payload.source,
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "orientation": info.orientation,
        "bytes": len(data),
    }
    return ResizeResult(outputs=outputs, source=source).model_dump(mode="json")


def read_source(url: str, settings: Settings, storages: dict[str, Storage]) -> bytes:
    """The source's bytes, from storage or over https (capped in size, and in time)."""
    if url.lower().startswith(("https://", "http://")):
        policy = FetchPolicy(
            allow_private=settings.allow_private_urls,
            max_bytes=MAX_SOURCE_BYTES,
            timeout=FETCH_TIMEOUT,
        )
        return fetch_url(url, policy)
    storage, key = locate(url, settings, storages)
    return storage.get(key, max_bytes=MAX_SOURCE_BYTES)


def locate(url: str, settings: Settings, storages: dict[str, Storage]) -> tuple[Storage, str]:
    """The storage holding `url` and its key there.

    `file://` URLs must lie inside the configured file storage (CONVEYOR_STORAGE_URL): a job's
    payload may come from anyone allowed to submit, and must not read or write the rest of the
    worker's disk.
    """
    within = None
    if url.lower().startswith("file://"):
        within = settings.storage_url
        if not within.lower().startswith("file://"):
            raise ForbiddenUrl(
                f"{url!r}: file:// URLs must lie inside CONVEYOR_STORAGE_URL, which is "
                f"{within!r}, not a file:// directory"
            )
    root, key = parse_blob_url(url, within=within)
    storage = storages.get(root)
    if storage is None:
        storage = storages[root] = open_storage(root)
    return storage, key
