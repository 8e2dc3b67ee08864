"""Copies the tab screenshots of the last browser-test run (build/browser/TAB-tab.png) to
docs/screenshots/TAB.png for the README, as 128-colour PNGs (well under 150 KB each).

    make browser-test && /usr/bin/python3 tests/browser/readme_screenshots.py

Needs python3-pil (deploy/install-deps.sh --tools)."""

import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TABS = ["generate", "inpaint", "colorize", "likelihood"]


def main():
    out = REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    for tab in TABS:
        src = REPO / "build" / "browser" / f"{tab}-tab.png"
        if not src.exists():
            sys.exit(f"readme_screenshots: {src} is missing; run make browser-test first")
        image = Image.open(src).convert("RGB")
        small = image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        dst = out / f"{tab}.png"
        small.save(dst, optimize=True)
        print(f"{dst.relative_to(REPO)}: {image.size[0]}x{image.size[1]}, {dst.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
