"""Example pictures for the README and the model folder, drawn by the C engine (./scored).

    /usr/bin/python3 tools/make_examples.py [--what samples,guided,inpaint,colorize] [--out docs/examples]

  samples   models/<model>-samples.png: 64 samples of each trained image model in models/
            (its card's default sampler, seed 0), as `scored sample --n 64` writes them
  guided    docs/examples/fmnist-vp-guided.png: one row per Fashion-MNIST class, 8 samples
            guided by fmnist-classifier (ODE Heun 50 steps, guidance weight --guidance)
  inpaint   docs/examples/fmnist-vp-inpaint.png: held-out test images; per row the input
            with the area to generate shown in red, then 4 inpaintings (PC sampler: reverse
            diffusion + Langevin, snr 0.16, --pc-steps noise levels)
  colorize  docs/examples/emoji-vp-colorize.png: held-out emoji; per row the original, its
            gray version (the input), then 4 colorizations (the same PC sampler)

Every picture is upscaled 3x (nearest) with labels; the command lines are printed.  Needs the
Debian packages dataset-fashion-mnist and fonts-noto-color-emoji for the held-out inputs.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import datasets  # noqa: E402

SCORED = os.path.join(ROOT, "scored")
PC = ["--sampler", "pc", "--predictor", "reverse_diffusion", "--corrector", "langevin",
      "--snr", "0.16"]


def run(*args):
    cmd = [SCORED, *map(str, args)]
    print("  " + " ".join(os.path.relpath(a, ROOT) if os.path.isabs(a) else a for a in map(str, cmd)))
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"make_examples: {p.stderr.strip()}")


def to_u8(x, centered=True):
    """[n, C, H, W] model units -> uint8 [n, H, W, C]."""
    x = (x + 1) / 2 if centered else x
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def sheet(rows, labels=None, scale=3, pad=2, label_w=90):
    """rows: list of lists of uint8 [H, W, C] tiles -> one PIL image, a label column at left."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    lw = label_w if labels else 0
    out = Image.new("RGB", (lw + cols * (w * scale + pad) + pad, len(rows) * (h * scale + pad) + pad),
                    "white")
    d = ImageDraw.Draw(out)
    for i, row in enumerate(rows):
        y = pad + i * (h * scale + pad)
        if labels:
            d.text((4, y + h * scale // 2 - 6), labels[i], fill="black")
        for j, tile in enumerate(row):
            t = tile if tile.shape[2] == 3 else np.repeat(tile, 3, axis=2)
            im = Image.fromarray(t).resize((w * scale, h * scale), Image.NEAREST)
            out.paste(im, (lw + pad + j * (w * scale + pad), y))
    return out


def save_png(u8, path):
    Image.fromarray(u8[:, :, 0] if u8.shape[2] == 1 else u8).save(path)


def samples(out_dir):
    for model, path in (("fmnist-vp", "models/fmnist-vp.safetensors"),
                        ("emoji-vp", "models/emoji-vp.safetensors")):
        if os.path.exists(os.path.join(ROOT, path)):
            run("sample", "--model", os.path.join(ROOT, path), "--n", 64, "--seed", 0,
                "--out", os.path.join(ROOT, "models", f"{model}-samples.png"))


def guided(out_dir, weight):
    names = datasets.FMNIST_LABELS
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for k, name in enumerate(names):
            npy = os.path.join(d, f"{k}.npy")
            run("sample", "--model", os.path.join(ROOT, "models/fmnist-vp.safetensors"), "--n", 8,
                "--seed", k, "--label", k, "--guidance", weight, "--sampler", "ode",
                "--solver", "heun", "--steps", 50, "--out", npy)
            rows.append(list(to_u8(np.load(npy))))
    sheet(rows, names).save(os.path.join(out_dir, "fmnist-vp-guided.png"))


def inpaint(out_dir, pc_steps):
    x, _ = datasets.load_fashion_mnist("test")
    picks = [0, 1, 2, 3, 5]
    masks = []
    for i in range(len(picks)):
        m = np.full((28, 28), 255, np.uint8)
        if i % 2 == 0:
            m[:, 14:] = 0          # generate the right half
        else:
            m[7:21, 7:21] = 0      # generate a central square
        masks.append(m)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for i, (p, m) in enumerate(zip(picks, masks)):
            img, msk, npy = (os.path.join(d, f"{i}{s}") for s in ("i.png", "m.png", "o.npy"))
            Image.fromarray(x[p]).save(img)
            Image.fromarray(m).save(msk)
            run("inpaint", "--model", os.path.join(ROOT, "models/fmnist-vp.safetensors"),
                "--image", img, "--mask", msk, "--n", 4, "--seed", i, *PC, "--steps", pc_steps,
                "--out", npy)
            shown = np.repeat(x[p][:, :, None], 3, axis=2).copy()
            shown[m == 0] = (shown[m == 0] * 0.4 + np.array([150, 0, 0])).astype(np.uint8)
            rows.append([shown] + list(to_u8(np.load(npy))))
    sheet(rows, label_w=0).save(os.path.join(out_dir, "fmnist-vp-inpaint.png"))


def colorize(out_dir, pc_steps):
    x, _ = datasets.load_emoji32("test")
    picks = [5, 17, 40, 63, 90, 120]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for i, p in enumerate(picks):
            rgb = x[p].transpose(1, 2, 0)
            gray = np.rint(rgb.astype(np.float64).mean(axis=2)).astype(np.uint8)
            img, npy = os.path.join(d, f"{i}.png"), os.path.join(d, f"{i}.npy")
            Image.fromarray(gray).save(img)
            run("colorize", "--model", os.path.join(ROOT, "models/emoji-vp.safetensors"),
                "--image", img, "--n", 4, "--seed", i, *PC, "--steps", pc_steps, "--out", npy)
            rows.append([rgb, np.repeat(gray[:, :, None], 3, axis=2)] + list(to_u8(np.load(npy))))
    sheet(rows, label_w=0).save(os.path.join(out_dir, "emoji-vp-colorize.png"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--what", default="samples,guided,inpaint,colorize")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "examples"))
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--pc-steps", type=int, default=500, help="PC noise levels for inpaint/colorize")
    a = ap.parse_args(argv)
    if not os.path.exists(SCORED):
        sys.exit("make_examples: ./scored is not built (run make)")
    os.makedirs(a.out, exist_ok=True)
    for what in a.what.split(","):
        print(what)
        if what == "samples":
            samples(a.out)
        elif what == "guided":
            guided(a.out, a.guidance)
        elif what == "inpaint":
            inpaint(a.out, a.pc_steps)
        elif what == "colorize":
            colorize(a.out, a.pc_steps)
        else:
            sys.exit(f"make_examples: unknown --what {what!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
