"""`resize_image` payloads are checked at submission: bad ones never become jobs."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import InvalidPayload
from conveyor.handlers.image.handler import resize_image
from conveyor.handlers.image.plugin import conveyor_handlers

GOOD: dict[str, Any] = {
    "source": "s3://media/in.jpg",
    "destination": "s3://media/out/in-",
    "sizes": [{"name": "thumb", "width": 200, "height": 200, "fit": "cover"}],
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def test_registered_through_the_plugin_hook() -> None:
    assert conveyor_handlers() == [resize_image]
    assert resize_image.type == "resize_image"
    schema = resize_image.describe()["payload_schema"]
    assert {"source", "destination", "sizes", "format", "quality"} <= set(schema["properties"])


def test_good_payload_and_defaults() -> None:
    assert resize_image.validate(GOOD) == GOOD
    parsed = resize_image.parse(with_(format="JPG"))
    assert parsed.format == "jpeg"
    assert parsed.sizes[0].upscale is False
    assert resize_image.parse(with_(sizes=[{"name": "a", "width": 10}])).sizes[0].fit == "contain"


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (with_(sizes=[{"name": "t", "width": 200, "fit": "cover"}]), "sizes"),
        (with_(sizes=[{"name": "a", "width": 1}, {"name": "a", "width": 2}]), "sizes"),
        (with_(sizes=[]), "sizes"),
        (with_(sizes=[{"name": "../up", "width": 10}]), "sizes.0.name"),
        (with_(sizes=[{"name": "a/b", "width": 10}]), "sizes.0.name"),
        (with_(sizes=[{"name": "a", "width": 0}]), "sizes.0.width"),
        (with_(sizes=[{"name": "a", "width": 10, "fit": "stretch"}]), "sizes.0.fit"),
        (with_(sizes=[{"name": "a", "width": 10, "colour": "red"}]), "sizes.0.colour"),
        (with_(source="ftp://host/a.jpg"), "source"),
        (with_(destination="https://cdn.example/out/"), "destination"),
        (with_(format="gif"), "format"),
        (with_(quality=101), "quality"),
        (with_(extra=True), "extra"),
    ],
)
def test_bad_payloads_are_refused(payload: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        resize_image.validate(payload)
    assert where in caught.value.message
