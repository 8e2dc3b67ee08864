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


def gaussian_model(tmp_path, D):
    """One standard-ish Gaussian in D dimensions (a 1-component mixture) written to tmp_path."""
    doc = {"kind": "gmm", "name": f"gauss-{D}", "shape": [D],
           "sde": {"type": "vp", "beta_min": 0.1, "beta_max": 20, "N": 1000},
           "weights": [1.0], "means": [[0.1] * D], "stds": [[0.5] * D]}
    path = tmp_path / f"gauss-{D}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("D", [16, 17])
def test_likelihood_default_divergence_by_dimension(tmp_path, D):
    # no --exact-div, --probes or --hutchinson: exact for D <= 16, one rademacher probe above
    model = gaussian_model(tmp_path, D)
    x = tmp_path / "x.npy"
    pts = np.random.RandomState(D).normal(0.1, 0.5, (3, D))
    np.save(x, pts)
    default = ok("likelihood", "--model", model, "--input", x)
    exact = ok("likelihood", "--model", model, "--input", x, "--exact-div")
    probe = ok("likelihood", "--model", model, "--input", x, "--probes", 1)
    assert "divergence=exact" in exact.stderr
    assert "divergence=hutchinson probes=1 probe=rademacher" in probe.stderr
    if D <= 16:
        assert "divergence=exact" in default.stderr
        assert default.stdout == exact.stdout
    else:
        assert "divergence=hutchinson probes=1 probe=rademacher" in default.stderr
        assert default.stdout == probe.stdout
    # the exact answer: log N(x; 0.1, 0.25 I), to ODE accuracy
    truth = (-0.5 * ((pts - 0.1) ** 2).sum(axis=1) / 0.25 - 0.5 * D * math.log(2 * math.pi * 0.25))
    got = np.array([d["log_likelihood_nats"] for d in likelihood_lines(exact.stdout)])
    assert np.abs(got - truth).max() < 0.05
    # choosing probes keeps Hutchinson, even for small D
    gauss = ok("likelihood", "--model", model, "--input", x, "--hutchinson", "gaussian")
    assert "divergence=hutchinson probes=1 probe=gaussian" in gauss.stderr


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


# ---- the literal command lines ----------------------------------------------------------
# Other programs call scored with exactly these spellings (issue 2, "CLI"), so each line below is
# the command line as written, on the bundled analytic models.  Only --n and --steps are
# smaller where the literal line would be slow on fmnist-gmm (784 dimensions); every option name
# and value spelling is the issue's.

def lit(line, **fmt):
    """Runs `scored <line>` (placeholders filled from fmt), which must succeed."""
    import shlex
    return ok(*shlex.split(line.format(**fmt)))


def gmm2d_model():
    doc = json.loads((REPO / GMM2D).read_text())
    return (np.array(doc["weights"]), np.array(doc["means"], dtype=float),
            np.array(doc["stds"], dtype=float), doc["sde"])


def vp_marginal(t, sde):
    """a(t) and std(t) of the VP SDE (spec §1)."""
    lmc = -0.25 * t * t * (sde["beta_max"] - sde["beta_min"]) - 0.5 * t * sde["beta_min"]
    return math.exp(lmc), math.sqrt(1 - math.exp(2 * lmc))


def gmm2d_log_density(x, t=0.0):
    """log p_t(x) of gmm-2d diffused to time t (t = 0: the data density)."""
    w, mu, s, sde = gmm2d_model()
    a, sd = vp_marginal(t, sde) if t > 0 else (1.0, 0.0)
    var = a * a * s * s + sd * sd  # (K,)
    d2 = ((x[:, None, :] - a * mu[None]) ** 2).sum(axis=2)  # (n, K)
    logk = np.log(w) - d2 / (2 * var) - np.log(2 * math.pi * var)
    m = logk.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(logk - m).sum(axis=1, keepdims=True)))[:, 0]


def gmm2d_score(x, t):
    w, mu, s, sde = gmm2d_model()
    a, sd = vp_marginal(t, sde)
    var = a * a * s * s + sd * sd
    diff = a * mu[None] - x[:, None, :]  # (n, K, 2)
    logk = np.log(w) - (diff ** 2).sum(axis=2) / (2 * var) - np.log(2 * math.pi * var)
    post = np.exp(logk - logk.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    return (post[:, :, None] * diff / var[None, :, None]).sum(axis=1)


def near_ring(x):
    """Median distance of 2-D samples to the nearest mode of gmm-2d."""
    return np.median(np.linalg.norm(x[:, None, :] - MODES[None], axis=2).min(axis=1))


def grid_size(n, side=28, pad=2):
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return cols * side + (cols + 1) * pad, rows * side + (rows + 1) * pad


def summary(stderr, key):
    return stderr.split(f"{key}=")[1].split()[0]


PC_LINE = ("sample --model {m} --n {n} --seed 7 --sampler pc --predictor reverse_diffusion "
           "--corrector langevin --snr 0.16 --corrector-steps 1 --steps {steps}")


def test_literal_sample_pc_npy(tmp_path):
    out = tmp_path / "out.npy"
    r = lit(PC_LINE + " --out {out}", m=GMM2D, n=16, steps=1000, out=out)
    x = np.load(out)
    assert x.shape == (16, 2) and x.dtype == np.float32 and np.all(np.isfinite(x))
    assert near_ring(x) < 0.3
    assert "predictor=reverse_diffusion corrector=langevin snr=0.16 corrector_steps=1 steps=1000" \
        in r.stderr
    assert float(summary(r.stderr, "mean_nfe")) == 2000  # one predictor + one corrector step
    # [--eps E] [--no-denoise]
    out2 = tmp_path / "eps.npy"
    r = lit(PC_LINE + " --eps 1e-3 --no-denoise --out {out}", m=GMM2D, n=16, steps=1000, out=out2)
    assert "eps=0.001 denoise=off" in r.stderr
    y = np.load(out2)
    assert y.shape == (16, 2) and np.all(np.isfinite(y)) and near_ring(y) < 0.3
    assert not np.array_equal(x, y)  # no final denoising step: a different last step


def test_literal_sample_pc_png(tmp_path):
    out = tmp_path / "out.png"
    r = lit(PC_LINE + " --out {out}", m=FMNIST, n=16, steps=100, out=out)
    assert png_size(out) == grid_size(16) == (122, 122)  # a 4x4 grid
    img = read_png(out)
    assert img.shape == (122, 122, 1) and img.std() > 10
    assert "n=16" in r.stderr and "corrector=langevin" in r.stderr
    one = tmp_path / "one.png"
    lit(PC_LINE + " --eps 1e-3 --no-denoise --out {out}", m=FMNIST, n=1, steps=100, out=one)
    assert png_size(one) == (28, 28)


@pytest.mark.parametrize("solver", ["rk45", "euler", "heun"])
def test_literal_sample_ode(tmp_path, solver):
    out = tmp_path / "ode.npy"
    tol = " --rtol 1e-5 --atol 1e-5" if solver == "rk45" else " --steps 200"
    r = lit("sample --model {m} --n 16 --seed 3 --sampler ode --solver {s}" + tol + " --out {out}",
            m=GMM2D, s=solver, out=out)
    x = np.load(out)
    assert x.shape == (16, 2) and np.all(np.isfinite(x)) and near_ring(x) < 0.3
    assert f"sampler=ode solver={solver}" in r.stderr
    nfe = float(summary(r.stderr, "mean_nfe"))
    if solver == "rk45":
        assert 20 < nfe < 2000 and "rtol=1e-05 atol=1e-05" in r.stderr
    else:  # fixed steps: 1 (euler) or 2 (heun) evaluations per step, plus the denoising step
        assert nfe == 200 * (1 if solver == "euler" else 2) + 1
    png = tmp_path / "ode.png"
    lit("sample --model {m} --n 2 --seed 3 --sampler ode --solver {s} --rtol 1e-3 --atol 1e-3 "
        "--steps 20 --out {out}", m=FMNIST, s=solver, out=png)
    assert png_size(png) == grid_size(2) == (62, 32)


def test_literal_sample_label_guidance(tmp_path):
    out = tmp_path / "g.npy"
    r = lit("sample --model {m} --n 16 --seed 4 --sampler ode --solver rk45 --label 5 --guidance 2 "
            "--out {out}", m=GMM2D, out=out)
    x = np.load(out)
    assert x.shape == (16, 2) and "label=5 guidance=2" in r.stderr
    assert np.linalg.norm(x - MODES[5], axis=1).max() < 0.6
    # an image model, the label by name: every sample is nearest its class mean
    img = tmp_path / "g.npy"
    lit("sample --model {m} --n 4 --seed 4 --sampler ode --solver heun --steps 50 "
        "--label Sneaker --guidance 1 --out {out}", m=FMNIST, out=img)
    x = np.load(img)
    assert x.shape == (4, 1, 28, 28) and np.all(np.isfinite(x))
    doc = json.loads((REPO / FMNIST).read_text())
    sneaker = doc["labels"].index("Sneaker")
    means = np.array(doc["means"])
    nearest = np.linalg.norm(x.reshape(4, 1, -1) - means[None], axis=2).argmin(axis=1)
    assert np.all(nearest == sneaker)


LIK_POINTS = np.array([[1.02, 0.03], [0.0, -0.97], [-0.68, 0.74], [0.3, 0.2]])


@pytest.mark.parametrize("opts,tol", [
    ("--exact-div", 0.05),
    ("--exact-div --rtol 1e-7 --atol 1e-7 --seed 1", 0.01),
    ("--probes 16 --hutchinson rademacher --seed 2", None),
    ("--probes 16 --hutchinson gaussian --rtol 1e-5 --atol 1e-5 --seed 3", None),
    ("--hutchinson gaussian", "one probe"),
    ("--probes 1", "one probe"),
    ("", 0.05),  # D = 2: the exact divergence by default
])
def test_literal_likelihood_npy(tmp_path, opts, tol):
    x = tmp_path / "x.npy"
    np.save(x, LIK_POINTS)
    r = lit("likelihood --model {m} --input {x} " + opts, m=GMM2D, x=x)
    lines = likelihood_lines(r.stdout)
    assert [d["index"] for d in lines] == [0, 1, 2, 3]
    truth = gmm2d_log_density(LIK_POINTS)
    for d, want in zip(lines, truth):
        assert set(d) <= {"index", "log_likelihood_nats", "nfe", "log_likelihood_se"}
        assert isinstance(d["nfe"], int) and 10 < d["nfe"] < 5000
        assert math.isfinite(d["log_likelihood_nats"])
        if tol is None:  # 16 probes: within 3 standard errors (plus the ODE's own error)
            assert d["log_likelihood_se"] > 0
            assert abs(d["log_likelihood_nats"] - want) < 3 * d["log_likelihood_se"] + 0.05, d
        elif tol == "one probe":  # unbiased but noisy: tens of nats off the ring (index 3)
            assert "log_likelihood_se" not in d
            assert d["index"] == 3 or abs(d["log_likelihood_nats"] - want) < 8, (d, want)
        else:
            assert "log_likelihood_se" not in d
            assert abs(d["log_likelihood_nats"] - want) < tol, (d, want)
    assert summary(r.stderr, "divergence") == ("exact" if "--probes" not in opts and
                                               "--hutchinson" not in opts else "hutchinson")


def test_literal_likelihood_png(tmp_path):
    img = fmnist_image(tmp_path, seed=11)
    for opts in ("", "--probes 2 --hutchinson gaussian --rtol 1e-4 --atol 1e-4 --seed 5",
                 "--hutchinson rademacher --seed 6"):
        r = lit("likelihood --model {m} --input {x} " + opts, m=FMNIST, x=img)
        (d,) = likelihood_lines(r.stdout)
        assert d["index"] == 0 and d["nfe"] > 10
        assert math.isfinite(d["log_likelihood_nats"]) and math.isfinite(d["bits_per_dim"])
        assert 0 < d["bits_per_dim"] < 8
        # bits/dim with the §5 offset for 8-bit data rescaled to [-1, 1]
        assert d["bits_per_dim"] == pytest.approx(
            -d["log_likelihood_nats"] / (784 * math.log(2)) + 7, rel=1e-6)
        assert ("log_likelihood_se" in d) == ("--probes 2" in opts)
        assert "divergence=hutchinson" in r.stderr  # D = 784: probes by default


def test_literal_score(tmp_path):
    pts = (0.9 * MODES + 0.05).astype(np.float32)
    x, s1, s2, tf = (tmp_path / f for f in ("x.npy", "s1.npy", "s2.npy", "t.npy"))
    np.save(x, pts)
    lit("score --model {m} --input {x} --t 0.3 --out {out}", m=GMM2D, x=x, out=s1)
    sc = np.load(s1)
    assert sc.shape == (8, 2) and sc.dtype == np.float32
    want = gmm2d_score(pts.astype(float), 0.3)
    assert np.allclose(sc, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    ts = np.linspace(0.01, 1.0, 8)
    np.save(tf, ts)
    lit("score --model {m} --input {x} --t-file {tf} --out {out}", m=GMM2D, x=x, tf=tf, out=s2)
    sc2 = np.load(s2)
    assert sc2.shape == (8, 2)
    for i, t in enumerate(ts):
        want = gmm2d_score(pts[i:i + 1].astype(float), t)[0]
        assert np.allclose(sc2[i], want, rtol=1e-3, atol=1e-3 * np.abs(want).max()), (t, sc2[i], want)


def test_literal_encode_decode(tmp_path):
    pts = (MODES[[1, 4]] + 0.03).astype(np.float32)
    x, z, back = tmp_path / "x.npy", tmp_path / "z.npy", tmp_path / "back.npy"
    np.save(x, pts)
    lit("encode --model {m} --input {x} --out {z}", m=GMM2D, x=x, z=z)
    zz = np.load(z)
    assert zz.shape == (2, 2) and np.all(np.isfinite(zz)) and np.abs(zz).max() < 6
    r = lit("decode --model {m} --input {z} --out {out} --no-denoise", m=GMM2D, z=z, out=back)
    assert "denoise=off" in r.stderr
    assert np.abs(np.load(back) - pts).max() < 1e-2
    # PNG in, latent .npy out; latent in, PNG out
    img = fmnist_image(tmp_path, seed=12)
    zi, png = tmp_path / "zi.npy", tmp_path / "back.png"
    lit("encode --model {m} --input {x} --out {z}", m=FMNIST, x=img, z=zi)
    lat = np.load(zi)
    assert lat.shape == (1, 1, 28, 28) and np.all(np.isfinite(lat))
    assert 0.5 < lat.std() < 1.5  # a latent of the N(0, I) prior
    lit("decode --model {m} --input {z} --out {out}", m=FMNIST, z=zi, out=png)
    assert png_size(png) == (28, 28)
    assert np.abs(read_png(png).astype(int) - read_png(img).astype(int)).max() <= 2


def test_literal_inpaint_colorize(tmp_path):
    img = fmnist_image(tmp_path, seed=13)
    mask = tmp_path / "mask.png"
    m = np.zeros((28, 28), dtype=np.uint8)
    m[:14] = 255  # keep the top half
    write_png(mask, m)
    out = tmp_path / "out.png"
    lit("inpaint --model {m} --image {img} --mask {mask} --out {out}", m=FMNIST, img=img,
        mask=mask, out=out)
    assert png_size(out) == (28, 28)
    assert np.array_equal(read_png(out)[:14], read_png(img)[:14])
    model = rgb_model(tmp_path)
    gray, col = tmp_path / "gray.png", tmp_path / "color.png"
    write_png(gray, np.random.RandomState(2).randint(0, 256, (8, 8)).astype(np.uint8))
    lit("colorize --model {m} --image {img} --out {out}", m=model, img=gray, out=col)
    assert read_png(col).shape == (8, 8, 3)


def test_literal_models(tmp_path):
    for line in ("models", "models {d}"):
        rows = [r.split() for r in lit(line, d=REPO / "models").stdout.strip().splitlines()]
        by_name = {r[0]: r for r in rows}
        assert by_name["gmm-2d"][1:4] == ["gmm", "[2]", "vp(beta_min=0.1,beta_max=20,N=1000)"]
        assert by_name["fmnist-gmm"][2] == "[1,28,28]"
        assert by_name["gmm-2d-ve"][3].startswith("ve(")
    d = tmp_path / "only"
    d.mkdir()
    (d / "x.json").write_text((REPO / GMM2D).read_text())
    rows = lit("models {d}", d=d).stdout.strip().splitlines()
    assert len(rows) == 1 and rows[0].split()[0] == "gmm-2d"


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
    ("no-command", [], 2, "missing command"),
    ("option-before-command", ["--frob"], 2, "--frob"),
    ("help-unknown-command", ["help", "frobnicate"], 2, "frobnicate"),
    ("unknown-short-option", ["likelihood", "-x", "--model", GMM2D, "--input", "{pts}"], 2, "-x"),
    ("option-of-other-command", ["likelihood", "--model", GMM2D, "--input", "{pts}", "--snr",
                                 "0.16"], 2, "--snr"),
    ("unexpected-argument", ["sample", "--model", GMM2D, "--out", "{out}.npy", "extra"], 2,
     "extra"),
    ("score-t-and-t-file", ["score", "--model", GMM2D, "--input", "{pts}", "--t", "0.5",
                            "--t-file", "{pts}", "--out", "{out}.npy"], 2, "--t-file"),
    ("models-two-dirs", ["models", "{empty_dir}", "{empty_dir}"], 2, "unexpected argument"),
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
    ("exact-div-and-probes", ["likelihood", "--model", GMM2D, "--input", "{pts}", "--exact-div",
                              "--probes", "4"], 1, "--exact-div"),
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
    # every error, usage mistakes included, is exactly one stderr line
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and r.stderr.endswith("\n"), r.stderr
    assert lines[0].startswith("scored: "), r.stderr
    if code == 2:
        assert "--help" in lines[0]  # the usage hint, folded into the same line
    assert fragment in lines[0]
    assert r.stdout == ""
    assert set(p.name for p in tmp_path.iterdir()) == before  # no output, no .tmp left
