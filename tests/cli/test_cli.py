"""End-to-end tests of the scored command line (./scored, run from the repository root): every
subcommand on the bundled analytic models (round trips, shapes, determinism, exact densities),
and every kind of bad input (exit code, one clear stderr line, no output file left behind)."""

import json
import math
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = "./scored"
GMM2D = "models/gmm-2d.json"
FMNIST = "models/fmnist-gmm.json"

# gmm-2d: 8 modes (std 0.1) on the unit circle, mode k at angle 2*pi*k/8, weight (k+1)/36
MODES = np.array([[math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)] for k in range(8)])


# One OpenBLAS thread: these tests check numbers, not speed, and when other jobs share the
# cores OpenBLAS's spinning worker threads can make a run several times slower (measured: a
# network likelihood took 45 s per image with 2 threads on a busy 2-core machine, 10 s with 1).
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def run(*args, timeout=60):
    return subprocess.run([BIN, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def ok(*args):
    r = run(*args)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


# ---- PNG helpers (zlib + struct only) -------------------------------------------------------

def write_png(path, pixels, color_type=None, bit_depth=8):
    """pixels: uint8 array (H, W) gray or (H, W, C) with C = 2 (gray+alpha), 3, 4."""
    pixels = np.asarray(pixels)
    h, w = pixels.shape[:2]
    ch = 1 if pixels.ndim == 2 else pixels.shape[2]
    if color_type is None:
        color_type = {1: 0, 2: 4, 3: 2, 4: 6}[ch]
    if bit_depth == 16:
        raw_rows = [pixels[y].astype(">u2").tobytes() for y in range(h)]
    else:
        raw_rows = [pixels[y].astype(np.uint8).tobytes() for y in range(h)]
    raw = b"".join(b"\x00" + r for r in raw_rows)

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_size(path):
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def read_png(path):
    """Decodes an 8-bit non-interlaced PNG into a uint8 array (H, W, C)."""
    data = Path(path).read_bytes()
    pos, idat = 8, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0
        elif kind == b"IDAT":
            idat += body
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = w * ch
    out = np.zeros((h, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)],
                             dtype=np.uint8).astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        for i in range(stride):
            a = cur[i - ch] if i >= ch else 0
            b = prev[i]
            c = prev[i - ch] if i >= ch else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (line[i] + pred) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, ch).astype(np.uint8)


def fmnist_image(tmp_path, seed=0):
    """A 28x28 gray PNG sampled from fmnist-gmm."""
    path = tmp_path / f"fm{seed}.png"
    ok("sample", "--model", FMNIST, "--n", 1, "--seed", seed, "--out", path)
    return path


# ---- help and version -----------------------------------------------------------------------

def test_version_and_help():
    assert ok("--version").stdout.strip() == "scored 0.1.0"
    assert "sample" in ok("--help").stdout
    for cmd in ("sample", "likelihood", "inpaint", "colorize", "score", "encode", "decode",
                "models"):
        r = ok(cmd, "--help")
        assert r.stdout.startswith(f"usage: scored {cmd}"), cmd


# ---- sample -----------------------------------------------------------------------------------

def test_sample_npy_shape_and_determinism(tmp_path):
    a, b, c, d = (tmp_path / f"{x}.npy" for x in "abcd")
    common = ["sample", "--model", GMM2D, "--n", 6, "--steps", 200]
    ok(*common, "--seed", 1, "--out", a)
    ok(*common, "--seed", 1, "--out", b)
    ok(*common, "--seed", 2, "--out", c)
    ok(*common, "--seed", 1, "--batch", 4, "--out", d)  # batching never changes a sample
    x = np.load(a)
    assert x.shape == (6, 2) and x.dtype == np.float32
    assert np.all(np.isfinite(x))
    assert a.read_bytes() == b.read_bytes() == d.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_sample_png_grid_size(tmp_path):
    out = tmp_path / "grid.png"
    r = ok("sample", "--model", FMNIST, "--n", 5, "--steps", 50, "--out", out)
    assert png_size(out) == (3 * 28 + 4 * 2, 2 * 28 + 3 * 2)  # 3 columns, 2 rows, 2 px padding
    assert "n=5" in r.stderr and "mean_nfe=" in r.stderr


def test_sample_png_single_image(tmp_path):
    out = fmnist_image(tmp_path)
    assert png_size(out) == (28, 28)
    img = read_png(out)
    assert img.shape == (28, 28, 1) and img.std() > 10  # a picture, not a flat field


def test_sample_ode_prints_nfe(tmp_path):
    out = tmp_path / "ode.npy"
    r = ok("sample", "--model", "gmm-2d", "--sampler", "ode", "--n", 50, "--out", out)
    x = np.load(out)
    assert x.shape == (50, 2)
    assert "sampler=ode" in r.stderr and "mean_nfe=" in r.stderr
    nfe = float(r.stderr.split("mean_nfe=")[1].split()[0])
    assert nfe > 10
    # samples sit near the ring's modes
    dist = np.linalg.norm(x[:, None, :] - MODES[None], axis=2).min(axis=1)
    assert np.median(dist) < 0.3


def test_sample_label_guidance(tmp_path):
    out = tmp_path / "g.npy"
    ok("sample", "--model", GMM2D, "--sampler", "ode", "--n", 20, "--label", "mode2",
       "--guidance", 1, "--out", out)
    x = np.load(out)
    assert np.linalg.norm(x - MODES[2], axis=1).max() < 0.6


# ---- encode / decode --------------------------------------------------------------------------

def test_encode_decode_roundtrip(tmp_path):
    pts = (MODES[[0, 3, 6]] + np.array([[0.05, -0.02], [0.0, 0.03], [-0.04, 0.0]])).astype(np.float32)
    x, z, back = tmp_path / "x.npy", tmp_path / "z.npy", tmp_path / "back.npy"
    np.save(x, pts)
    ok("encode", "--model", GMM2D, "--input", x, "--out", z, "--rtol", "1e-7", "--atol", "1e-7")
    zz = np.load(z)
    assert zz.shape == pts.shape and not np.allclose(zz, pts, atol=0.05)
    ok("decode", "--model", GMM2D, "--input", z, "--out", back, "--rtol", "1e-7", "--atol", "1e-7",
       "--no-denoise")
    assert np.abs(np.load(back) - pts).max() < 1e-3


# ---- likelihood -------------------------------------------------------------------------------

def likelihood_lines(stdout):
    return [json.loads(line) for line in stdout.strip().splitlines()]


def test_likelihood_npy_lines(tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.array([[1.0, 0.0], [0.0, 1.0], [0.3, 0.2]]))
    z = tmp_path / "z.npy"
    lines = likelihood_lines(ok("likelihood", "--model", GMM2D, "--input", x,
                                "--latent-out", z).stdout)
    assert [d["index"] for d in lines] == [0, 1, 2]
    for d in lines:
        assert math.isfinite(d["log_likelihood_nats"]) and d["nfe"] > 0
        assert "bits_per_dim" not in d and "log_likelihood_se" not in d
    assert lines[2]["log_likelihood_nats"] < lines[1]["log_likelihood_nats"]  # off the ring
    assert np.load(z).shape == (3, 2)


def test_likelihood_hutchinson_matches_exact(tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.array([0.0, -1.0], dtype=np.float32))  # mode 6, weight 7/36
    hut = likelihood_lines(ok("likelihood", "--model", GMM2D, "--input", x, "--probes", 16).stdout)
    exact = likelihood_lines(ok("likelihood", "--model", GMM2D, "--input", x, "--exact-div").stdout)
    assert len(hut) == len(exact) == 1
    assert "log_likelihood_se" in hut[0]
    assert abs(hut[0]["log_likelihood_nats"] - exact[0]["log_likelihood_nats"]) < 0.2
    analytic = math.log(7 / 36) - math.log(2 * math.pi * 0.01)
    assert abs(exact[0]["log_likelihood_nats"] - analytic) < 0.05


def test_likelihood_png_bits_per_dim(tmp_path):
    img = fmnist_image(tmp_path, seed=3)
    (d,) = likelihood_lines(ok("likelihood", "--model", FMNIST, "--input", img).stdout)
    assert math.isfinite(d["bits_per_dim"]) and 0 < d["bits_per_dim"] < 8
    assert math.isfinite(d["log_likelihood_nats"])


# ---- inpaint / colorize -----------------------------------------------------------------------

def test_inpaint_keeps_known_half(tmp_path):
    img = fmnist_image(tmp_path, seed=5)
    mask = tmp_path / "mask.png"
    m = np.zeros((28, 28), dtype=np.uint8)
    m[:, :14] = 255  # keep the left half
    write_png(mask, m)
    out = tmp_path / "out.png"
    ok("inpaint", "--model", FMNIST, "--image", img, "--mask", mask, "--out", out, "--seed", 7)
    before, after = read_png(img), read_png(out)
    assert after.shape == (28, 28, 1)
    assert np.array_equal(before[:, :14], after[:, :14])
    assert not np.array_equal(before[:, 14:], after[:, 14:])


def test_inpaint_rgba_transparent_area(tmp_path):
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[:, :, :3] = 90
    rgba[:, :, 3] = 255
    rgba[10:20, 10:20, 3] = 0  # the hole to fill
    img = tmp_path / "hole.png"
    write_png(img, rgba)
    out = tmp_path / "filled.png"
    ok("inpaint", "--model", FMNIST, "--image", img, "--out", out, "--n", 4, "--steps", 100)
    assert png_size(out) == (2 * 28 + 3 * 2, 2 * 28 + 3 * 2)
    single = tmp_path / "one.npy"
    ok("inpaint", "--model", FMNIST, "--image", img, "--out", single, "--steps", 100)
    x = np.load(single)
    assert x.shape == (1, 1, 28, 28)
    kept = np.ones((28, 28), dtype=bool)
    kept[10:20, 10:20] = False
    assert np.allclose(x[0, 0][kept], 2 * 90 / 255 - 1, atol=1e-6)
    assert np.abs(x[0, 0][~kept] - (2 * 90 / 255 - 1)).max() > 0.05


def rgb_model(tmp_path):
    """A small 3-channel image mixture ([3, 8, 8], two classes) written into tmp_path."""
    rng = np.random.RandomState(0)
    doc = {"kind": "gmm", "name": "rgb-8", "shape": [3, 8, 8],
           "sde": {"type": "vp", "beta_min": 0.1, "beta_max": 20, "N": 100},
           "weights": [0.5, 0.5], "stds": [0.1, 0.1], "labels": ["a", "b"],
           "means": [np.round(rng.uniform(-0.8, 0.8, 192), 4).tolist() for _ in range(2)]}
    path = tmp_path / "rgb-8.json"
    path.write_text(json.dumps(doc))
    return path


def test_colorize_rgb_model_keeps_gray_level(tmp_path):
    model = rgb_model(tmp_path)
    gray = np.random.RandomState(1).randint(0, 256, (8, 8)).astype(np.uint8)
    img = tmp_path / "gray.png"
    write_png(img, gray)
    out, png = tmp_path / "col.npy", tmp_path / "col.png"
    ok("colorize", "--model", model, "--image", img, "--out", out, "--n", 2)
    x = np.load(out)
    assert x.shape == (2, 3, 8, 8)
    # the channel mean is the input's gray level; the channels themselves differ (colour)
    assert np.abs(x.mean(axis=1) - (2 * gray.astype(float) / 255 - 1)).max() < 1e-4
    assert np.abs(x[:, 0] - x[:, 1]).mean() > 0.05
    ok("colorize", "--model", model, "--image", img, "--out", png)
    assert read_png(png).shape == (8, 8, 3)
    # an RGB picture with equal channels is the same gray image
    rgb_img, out2 = tmp_path / "rgb.png", tmp_path / "col2.npy"
    write_png(rgb_img, np.repeat(gray[:, :, None], 3, axis=2))
    ok("colorize", "--model", model, "--image", rgb_img, "--out", out2, "--n", 2)
    assert out.read_bytes() == out2.read_bytes()


def test_channel_conversions(tmp_path):
    # gray image into a 3-channel model: replicated; RGB image into a 1-channel model: mean
    model = rgb_model(tmp_path)
    gray = np.full((8, 8), 200, dtype=np.uint8)
    img, mask, out = tmp_path / "g.png", tmp_path / "m.png", tmp_path / "o.png"
    write_png(img, gray)
    write_png(mask, np.full((8, 8), 255, dtype=np.uint8))  # keep everything
    ok("inpaint", "--model", model, "--image", img, "--mask", mask, "--out", out, "--steps", 30)
    assert np.all(read_png(out) == 200)
    rgb = np.zeros((28, 28, 3), dtype=np.uint8)
    rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2] = 30, 60, 90
    rgb_png, z = tmp_path / "rgb.png", tmp_path / "z.npy"
    write_png(rgb_png, rgb)
    gray_png, z2 = tmp_path / "g60.png", tmp_path / "z2.npy"
    write_png(gray_png, np.full((28, 28), 60, dtype=np.uint8))
    ok("encode", "--model", FMNIST, "--input", rgb_png, "--out", z)
    ok("encode", "--model", FMNIST, "--input", gray_png, "--out", z2)
    assert np.load(z).shape == (1, 1, 28, 28)
    assert np.allclose(np.load(z), np.load(z2), atol=1e-4)


def test_colorize_refuses_gray_model(tmp_path):
    img = fmnist_image(tmp_path)
    out = tmp_path / "c.png"
    r = run("colorize", "--model", FMNIST, "--image", img, "--out", out)
    assert r.returncode == 1
    assert r.stderr.startswith("scored: ") and len(r.stderr.strip().splitlines()) == 1
    assert "3-channel" in r.stderr
    assert not out.exists()


# ---- score ------------------------------------------------------------------------------------

def test_score_shape_and_direction(tmp_path):
    pts = (0.9 * MODES).astype(np.float32)  # just inside every mode
    x, s = tmp_path / "x.npy", tmp_path / "s.npy"
    np.save(x, pts)
    ok("score", "--model", GMM2D, "--input", x, "--t", 0.01, "--out", s)
    sc = np.load(s)
    assert sc.shape == pts.shape and sc.dtype == np.float32
    toward = np.sum(sc * (MODES - pts), axis=1)
    cos = toward / (np.linalg.norm(sc, axis=1) * np.linalg.norm(MODES - pts, axis=1))
    assert np.all(cos > 0.9)
    # one time per item from a file gives the same scores
    tf, s2 = tmp_path / "t.npy", tmp_path / "s2.npy"
    np.save(tf, np.full(8, 0.01))
    ok("score", "--model", GMM2D, "--input", x, "--t-file", tf, "--out", s2)
    assert np.array_equal(np.load(s2), sc)


# ---- models -----------------------------------------------------------------------------------

def test_models_lists_bundled(tmp_path):
    lines = ok("models").stdout.strip().splitlines()
    names = sorted(line.split()[0] for line in lines)
    assert {"fmnist-gmm", "gmm-2d", "gmm-2d-ve"} <= set(names)
    # anything else shipped is a trained network (.safetensors)
    assert all(" network " in line for line in lines if line.split()[0] not in ("fmnist-gmm", "gmm-2d", "gmm-2d-ve"))
    assert any("[1,28,28]" in line and "classes=10" in line for line in lines)
    # a broken file is reported but the others still list, exit 0
    d = tmp_path / "m"
    d.mkdir()
    (d / "good.json").write_text((REPO / GMM2D).read_text())
    (d / "bad.json").write_text('{"kind": "gmm", "name": ')
    r = ok("models", d)
    assert len(r.stdout.strip().splitlines()) == 1
    assert "bad.json" in r.stderr


# ---- bad input ----------------------------------------------------------------------------------

SUBVP = {"kind": "gmm", "name": "subvp-2d", "shape": [2],
         "sde": {"type": "subvp", "beta_min": 0.1, "beta_max": 20, "N": 100},
         "weights": [0.5, 0.5], "means": [[1, 0], [-1, 0]], "stds": [0.1, 0.1]}


@pytest.fixture
def bad_inputs(tmp_path):
    """Files for the bad-input cases, by name."""
    f = {}
    f["malformed"] = tmp_path / "malformed.json"
    f["malformed"].write_text('{"kind": "gmm", "name": "x", "shape": [2], ')
    f["subvp"] = tmp_path / "subvp.json"
    f["subvp"].write_text(json.dumps(SUBVP))
    good = np.zeros((28, 28), dtype=np.uint8)
    good[5:20, 8:18] = 200
    f["good_png"] = tmp_path / "good.png"
    write_png(f["good_png"], good)
    f["corrupt_png"] = tmp_path / "corrupt.png"
    f["corrupt_png"].write_bytes(f["good_png"].read_bytes()[:50])
    f["png16"] = tmp_path / "sixteen.png"
    write_png(f["png16"], good.astype(np.uint16) * 257, bit_depth=16)
    f["png_32"] = tmp_path / "big.png"
    write_png(f["png_32"], np.zeros((32, 32), dtype=np.uint8))
    f["mask_32"] = tmp_path / "mask32.png"
    write_png(f["mask_32"], np.full((32, 32), 255, dtype=np.uint8))
    f["wrong_shape"] = tmp_path / "wrong.npy"
    np.save(f["wrong_shape"], np.zeros((3, 5), dtype=np.float32))
    f["pts"] = tmp_path / "pts.npy"
    np.save(f["pts"], np.zeros((4, 2), dtype=np.float32))
    f["truncated"] = tmp_path / "trunc.npy"
    f["truncated"].write_bytes(f["pts"].read_bytes()[:-8])
    f["empty_dir"] = tmp_path / "empty"
    f["empty_dir"].mkdir()
    return f


# (case id, argv with {name} placeholders for bad_inputs / {out}, exit code, stderr fragment)
BAD_CASES = [
    ("missing-model", ["sample", "--model", "{tmp}/nope.json", "--out", "{out}.npy"], 1, "nope.json"),
    ("unknown-model-name", ["sample", "--model", "no-such-model", "--out", "{out}.npy"], 1, "not found"),
    ("malformed-model", ["sample", "--model", "{malformed}", "--out", "{out}.npy"], 1, "JSON"),
    ("unknown-subcommand", ["frobnicate", "--out", "{out}.npy"], 2, "frobnicate"),
    ("unknown-option", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--frob"], 2, "--frob"),
    ("missing-out", ["sample", "--model", GMM2D], 2, "--out"),
    ("missing-value", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--n"], 2, "--n"),
    ("n-zero", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--n", "0"], 1, "--n"),
    ("n-too-many", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--n", "5000"], 1, "--n"),
    ("n-garbage", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--n", "5x"], 1, "--n"),
    ("steps-one", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--steps", "1"], 1, "steps"),
    ("steps-too-few-vp", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--steps", "10"], 1, "steps"),
    ("snr-negative", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--snr", "-1"], 1, "--snr"),
    ("steps-abc", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--steps", "abc"], 1, "--steps"),
    ("seed-negative", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--seed", "-1"], 1, "--seed"),
    ("eps-range", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--eps", "0.7"], 1, "--eps"),
    ("rtol-nan", ["sample", "--model", GMM2D, "--sampler", "ode", "--out", "{out}.npy",
                  "--rtol", "nan"], 1, "--rtol"),
    ("unknown-predictor", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--predictor", "magic"],
     1, "--predictor"),
    ("ancestral-subvp", ["sample", "--model", "{subvp}", "--out", "{out}.npy", "--predictor",
                         "ancestral", "--corrector", "none"], 1, "ancestral"),
    ("label-out-of-range", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--label", "8"], 1,
     "--label"),
    ("label-unknown-name", ["sample", "--model", FMNIST, "--out", "{out}.png", "--label", "Hat"], 1,
     "--label"),
    ("guidance-without-label", ["sample", "--model", GMM2D, "--out", "{out}.npy", "--guidance", "2"],
     1, "--label"),
    ("png-for-2d-model", ["sample", "--model", GMM2D, "--out", "{out}.png"], 1, "image model"),
    ("bad-out-extension", ["sample", "--model", GMM2D, "--out", "{out}.txt"], 1, ".npy"),
    ("out-dir-missing", ["sample", "--model", GMM2D, "--out", "{tmp}/no/dir/x.npy"], 1, "directory"),
    ("corrupt-png", ["likelihood", "--model", FMNIST, "--input", "{corrupt_png}"], 1, "PNG"),
    ("png-16-bit", ["likelihood", "--model", FMNIST, "--input", "{png16}"], 1, "16-bit"),
    ("png-wrong-size", ["likelihood", "--model", FMNIST, "--input", "{png_32}"], 1, "32x32"),
    ("mask-wrong-size", ["inpaint", "--model", FMNIST, "--image", "{good_png}", "--mask",
                         "{mask_32}", "--out", "{out}.png"], 1, "mask"),
    ("inpaint-no-mask-no-alpha", ["inpaint", "--model", FMNIST, "--image", "{good_png}", "--out",
                                  "{out}.png"], 1, "alpha"),
    ("inpaint-ode", ["inpaint", "--model", FMNIST, "--image", "{good_png}", "--mask", "{good_png}",
                     "--out", "{out}.png", "--sampler", "ode"], 1, "pc"),
    ("npy-wrong-shape", ["likelihood", "--model", GMM2D, "--input", "{wrong_shape}",
                         "--latent-out", "{out}.npy"], 1, "shape"),
    ("npy-truncated", ["encode", "--model", GMM2D, "--input", "{truncated}", "--out", "{out}.npy"],
     1, "truncated"),
    ("missing-input-file", ["encode", "--model", GMM2D, "--input", "{tmp}/none.npy", "--out",
                            "{out}.npy"], 1, "none.npy"),
    ("probes-zero", ["likelihood", "--model", FMNIST, "--input", "{good_png}", "--probes", "0",
                     "--latent-out", "{out}.npy"], 1, "--probes"),
    ("probes-too-many", ["likelihood", "--model", FMNIST, "--input", "{good_png}", "--probes",
                         "1000", "--latent-out", "{out}.npy"], 1, "--probes"),
    ("score-missing-t", ["score", "--model", GMM2D, "--input", "{pts}", "--out", "{out}.npy"], 2,
     "--t"),
    ("score-t-zero", ["score", "--model", GMM2D, "--input", "{pts}", "--t", "0", "--out",
                      "{out}.npy"], 1, "--t"),
    ("score-t-file-wrong-count", ["score", "--model", GMM2D, "--input", "{pts}", "--t-file",
                                  "{wrong_shape}", "--out", "{out}.npy"], 1, "--t-file"),
    ("decode-png-input", ["decode", "--model", FMNIST, "--input", "{good_png}", "--out",
                          "{out}.png"], 1, ".npy"),
    ("colorize-gray-model", ["colorize", "--model", FMNIST, "--image", "{good_png}", "--out",
                             "{out}.png"], 1, "3-channel"),
    ("models-empty-dir", ["models", "{empty_dir}"], 1, "no loadable model"),
]


@pytest.mark.parametrize("argv,code,fragment", [c[1:] for c in BAD_CASES],
                         ids=[c[0] for c in BAD_CASES])
def test_bad_input(tmp_path, bad_inputs, argv, code, fragment):
    out = tmp_path / "out"
    names = {k: str(v) for k, v in bad_inputs.items()}
    args = [a.format(tmp=tmp_path, out=out, **names) for a in argv]
    before = set(p.name for p in tmp_path.iterdir())
    r = run(*args)
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines and lines[0].startswith("scored: "), r.stderr
    if code == 1:
        assert len(lines) == 1, r.stderr
    else:
        assert "--help" in r.stderr  # the usage hint
    assert fragment in r.stderr
    assert r.stdout == ""
    assert set(p.name for p in tmp_path.iterdir()) == before  # no output, no .tmp left
