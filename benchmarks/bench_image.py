"""Resizing a 12-megapixel JPEG to three sizes: Conveyor's resize core beside the naive
`Image.open(path).resize(size)` once per size, in the same run.

    .venv/bin/python benchmarks/bench_image.py [--rounds 9] [--width 4000] [--height 3000]

The source is generated (gradients, noise and shapes, JPEG quality 90). Both sides read the
file, produce the same three geometries (1600 wide, 800 wide, a 200x200 centre crop) and
encode JPEG at quality 85, so the times compare like for like. Rounds alternate between the
methods so background load hits both alike; the table shows median times, the ratio,
source megapixels per second, peak memory (each method once in a fresh process: growth of
the peak RSS over the RSS before the work, read from /proc: Pillow's buffers are allocated
in C where tracemalloc does not see them), and quality as PSNR against a reference made from a
full decode with LANCZOS.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageStat

from conveyor.handlers.image.models import Size
from conveyor.handlers.image.resize import plan_size, render

SIZES = [
    Size(name="large", width=1600),
    Size(name="medium", width=800),
    Size(name="thumb", width=200, height=200, fit="cover"),
]
QUALITY = 85


def make_source(path: Path, width: int, height: int) -> None:
    """A photo-like JPEG: smooth gradients, sensor-like noise and sharp edges."""
    rnd = random.Random(12)
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.radial_gradient("L").resize((width, height))
    blue = Image.effect_noise((width, height), 24).point(lambda v: v // 2 + 64)
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    for _ in range(400):
        x, y = rnd.randrange(width), rnd.randrange(height)
        w, h = rnd.randrange(20, 400), rnd.randrange(20, 400)
        colour = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        draw.ellipse((x, y, x + w, y + h), outline=colour, width=rnd.randrange(1, 6))
    image.save(path, "JPEG", quality=90)


def conveyor_core(path: Path, lanczos: bool = False) -> list[bytes]:
    _, renditions = render(path.read_bytes(), SIZES, "jpeg", QUALITY)
    return [r.data for r in renditions]


def _naive(path: Path, resample: Image.Resampling | None) -> list[bytes]:
    outputs = []
    for size in SIZES:
        with Image.open(path) as source:
            plan = plan_size(size, source.width, source.height, 1)
            options = {"box": plan.crop} if size.fit == "cover" else {}
            if resample is not None:
                options["resample"] = resample
            resized = source.resize(plan.out_size, **options)
        buffer = io.BytesIO()
        resized.save(buffer, "JPEG", quality=QUALITY)
        outputs.append(buffer.getvalue())
    return outputs


def naive_default(path: Path) -> list[bytes]:
    """What people write: Pillow's default filter (bicubic)."""
    return _naive(path, None)


def naive_lanczos(path: Path) -> list[bytes]:
    """The same, with the filter the core uses."""
    return _naive(path, Image.Resampling.LANCZOS)


METHODS: dict[str, Callable[[Path], list[bytes]]] = {
    "conveyor resize core": conveyor_core,
    "naive open+resize per size": naive_default,
    "naive, LANCZOS filter": naive_lanczos,
}


def peak_memory(method: str, path: Path) -> float:
    """MiB the method adds to a fresh process's peak RSS, running once after a warm-up
    import (the child is this script with --child)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, "--source", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out)["peak_mib"])


def child(method: str, path: Path) -> None:
    def status_kib(field: str) -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"no {field} in /proc/self/status")

    # Start the high-water mark from here (ru_maxrss would carry the parent's over exec).
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = status_kib("VmRSS")
    METHODS[method](path)
    print(json.dumps({"peak_mib": (status_kib("VmHWM") - before) / 1024}))


def psnr(outputs: list[bytes], references: list[Image.Image]) -> float:
    """Mean PSNR (dB) of the outputs against the reference images."""
    values = []
    for data, reference in zip(outputs, references, strict=True):
        with Image.open(io.BytesIO(data)) as image:
            diff = ImageChops.difference(image.convert("RGB"), reference)
        mse = sum(v**2 for v in ImageStat.Stat(diff).rms) / 3
        values.append(10 * math.log10(255**2 / mse) if mse else 99.0)
    return statistics.mean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.source)
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "source.jpg"
        make_source(path, args.width, args.height)
        megapixels = args.width * args.height / 1e6
        print(
            f"source: {args.width}x{args.height} ({megapixels:.1f} MP), "
            f"{path.stat().st_size / 1e6:.1f} MB JPEG; sizes: "
            + ", ".join(
                f"{s.name} {s.width}{'x' + str(s.height) if s.height else 'w'} {s.fit}"
                for s in SIZES
            )
            + f"; Pillow {Image.__version__}"
        )

        with Image.open(path) as full:
            full.load()
            references = []
            for size in SIZES:
                plan = plan_size(size, full.width, full.height, 1)
                references.append(
                    full.resize(plan.out_size, Image.Resampling.LANCZOS, box=plan.crop)
                )

        times: dict[str, list[float]] = {name: [] for name in METHODS}
        results: dict[str, list[bytes]] = {}
        for name, method in METHODS.items():  # warm-up: imports, caches, page cache
            results[name] = method(path)
        for _ in range(args.rounds):
            for name, method in METHODS.items():
                started = time.perf_counter()
                method(path)
                times[name].append(time.perf_counter() - started)

        medians = {name: statistics.median(values) for name, values in times.items()}
        baseline = medians["conveyor resize core"]
        rows = []
        for name in METHODS:
            rows.append(
                (
                    name,
                    f"{medians[name] * 1000:8.1f}",
                    f"{min(times[name]) * 1000:8.1f}",
                    f"{medians[name] / baseline:6.2f}x",
                    f"{megapixels / medians[name]:7.1f}",
                    f"{peak_memory(name, path):8.1f}",
                    f"{psnr(results[name], references):6.1f}",
                )
            )
        header = ("method", "median ms", "best ms", "vs core", "MP/s", "peak MiB", "PSNR dB")
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        line = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
        print()
        print(line.format(*header))
        print(line.format(*("-" * w for w in widths)))
        for row in rows:
            print(line.format(*row))
        ratio = medians["naive open+resize per size"] / baseline
        print(
            f"\nspeed-up over the naive resize: {ratio:.2f}x (target: at least 2x) "
            f"over {args.rounds} alternating rounds"
        )


if __name__ == "__main__":
    main()
