"""The `resize_image` payload (see CONTRACT.md) and its result."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OutputFormat = Literal["jpeg", "png", "webp"]

SOURCE_SCHEMES = ("s3://", "file://", "https://", "http://")
DESTINATION_SCHEMES = ("s3://", "file://")


class Size(BaseModel):
    """One output: `name` becomes the file name, `width`/`height` the box it must fit."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    width: int = Field(ge=1, le=16384)
    height: int | None = Field(default=None, ge=1, le=16384)
    #: `contain` fits inside the box keeping the aspect ratio; `cover` fills it, cropping
    #: the overflow around the centre.
    fit: Literal["contain", "cover"] = "contain"
    #: Enlarge a source smaller than the box (off: small sources keep their size).
    upscale: bool = False

    @model_validator(mode="after")
    def _cover_needs_a_box(self) -> Size:
        if self.fit == "cover" and self.height is None:
            raise ValueError(f"size {self.name!r}: fit 'cover' needs both width and height")
        return self


class ResizeImage(BaseModel):
    """Resize one image into several sizes and store them beside each other."""

    model_config = ConfigDict(extra="forbid")

    #: `s3://bucket/key`, `file://path` (inside the configured file storage) or `https://...`.
    source: str = Field(min_length=1, max_length=4096)
    #: Output prefix: each size is stored at `destination + name + "." + ext`.
    destination: str = Field(min_length=1, max_length=2048)
    sizes: list[Size] = Field(min_length=1, max_length=32)
    #: Output format; by default the source's when it is jpeg, png or webp, else jpeg (png
    #: when the source has transparency).
    format: OutputFormat | None = None
    #: Encoder quality for jpeg and webp (1-100); defaults 85 and 80.
    quality: int | None = Field(default=None, ge=1, le=100)

    @field_validator("format", mode="before")
    @classmethod
    def _format_alias(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            return "jpeg" if value == "jpg" else value
        return value

    @field_validator("source")
    @classmethod
    def _source_scheme(cls, value: str) -> str:
        if not value.lower().startswith(SOURCE_SCHEMES):
            raise ValueError("source must be an s3://, file:// or https:// URL")
        return value

    @field_validator("destination")
    @classmethod
    def _destination_scheme(cls, value: str) -> str:
        if not value.lower().startswith(DESTINATION_SCHEMES):
            raise ValueError("destination must be an s3:// or file:// URL prefix")
        return value

    @field_validator("sizes")
    @classmethod
    def _unique_names(cls, sizes: list[Size]) -> list[Size]:
        names = [size.name for size in sizes]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"size names must be unique; repeated: {', '.join(repeated)}")
        return sizes


class Output(BaseModel):
    """One stored size, as listed in the job's result."""

    name: str
    url: str
    width: int
    height: int
    bytes: int
    content_type: str


class ResizeResult(BaseModel):
    """The job's result: the outputs in the order of `sizes`, and what the source was."""

    outputs: list[Output]
    source: dict[str, object]
