"""Sample images and the loopback web server's state, shared by the image tests (a module
with a unique name: `conftest` itself is not importable reliably)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

# --- images ------------------------------------------------------------------------------------


def jpeg_bytes(image: Image.Image, orientation: int | None = None, **save: Any) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=save.pop("quality", 90), **save)
    return buffer.getvalue()


def banded_photo(width: int = 2400, height: int = 1600) -> Image.Image:
    """Green with a red band along the raw top edge: orientation shows where the band goes."""
    image = Image.new("RGB", (width, height), (0, 160, 0))
    image.paste((220, 0, 0), (0, 0, width, height // 4))
    return image


@dataclass
class WebServer:
    """Serves `routes[path] = (status, headers, body)`; records each request's path and Host."""

    port: int
    scheme: str
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    #: Seconds to wait before answering a path (a slow server, to test time limits).
    delays: dict[str, float] = field(default_factory=dict)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"
