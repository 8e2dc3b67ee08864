"""Every CLI subcommand works unchanged with neural score networks: the small random-weight
golden networks of tests/data/golden (NCSN++, DDPM++, DDPM) through sample, likelihood,
inpaint, colorize, score, encode and decode, with checks that mean something for any
weights (shapes, determinism, kept pixels, round trips, agreement of the score with the
golden file, refusals that name what is missing)."""

import json
from pathlib import Path

import numpy as np

from test_cli import REPO, ok, png_size, run, write_png

G = "tests/data/golden/"
DDPMPP = G + "ddpmpp_vp_positional.safetensors"      # 3x16x16, VP continuous
NCSNPP = G + "ncsnpp_ve_skip_28x1.safetensors"       # 1x28x28, VE continuous (Fourier)
DDPM = G + "ddpm_ve_discrete.safetensors"            # 3x8x8, VE discrete


def test_models_lists_the_networks_and_not_the_classifier():
    r = ok("models", G)
    names = [line.split()[0] for line in r.stdout.splitlines()]
    assert "golden-ddpmpp_vp_positional" in names and "golden-ncsnpp_ve_skip_28x1" in names
    assert not any("classifier" in n for n in names)


def test_sample_pc_and_ode_are_deterministic(tmp_path):
    for model, extra in ((DDPMPP, ["--steps", "30"]), (NCSNPP, ["--sampler", "ode", "--solver", "heun", "--steps", "10"]),
                         (DDPM, ["--steps", "30", "--predictor", "reverse_diffusion"])):
        a, b = tmp_path / "a.npy", tmp_path / "b.npy"
        ok("sample", "--model", model, "--n", "3", "--seed", "5", *extra, "--out", a)
        ok("sample", "--model", model, "--n", "3", "--seed", "5", *extra, "--out", b)
        x = np.load(a)
        assert x.shape[0] == 3 and np.isfinite(x).all()
        assert a.read_bytes() == b.read_bytes()
    png = tmp_path / "g.png"
    ok("sample", "--model", DDPMPP, "--n", "4", "--steps", "30", "--out", png)
    assert png_size(png)[:2] == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)


def test_threads_and_batch_never_change_a_result(tmp_path):
    """--threads lanes share each --batch wave; every sample and likelihood keeps its bits
    (the Winograd convolutions put the tiles of a whole batch in shared products)."""
    runs = (["--threads", "1", "--batch", "64"], ["--threads", "2", "--batch", "64"],
            ["--threads", "3", "--batch", "4"], ["--threads", "2", "--batch", "1"])
    outs = []
    for i, extra in enumerate(runs):
        out = tmp_path / f"s{i}.npy"
        ok("sample", "--model", DDPMPP, "--n", "5", "--seed", "9", "--steps", "30", *extra, "--out", out)
        outs.append(out.read_bytes())
    assert all(o == outs[0] for o in outs)
    x = tmp_path / "x.npy"
    np.save(x, np.load(tmp_path / "s0.npy"))
    liks = []
    for extra in runs[:3]:
        r = ok("likelihood", "--model", DDPMPP, "--input", x, "--solver", "heun", "--steps", "4", *extra)
        liks.append(r.stdout)
    assert liks[0] == liks[1] == liks[2] and liks[0].count("\n") >= 5
    r = run("sample", "--model", DDPMPP, "--threads", "0", "--out", tmp_path / "z.npy")
    assert r.returncode != 0 and "--threads must be an integer in [1, 256], got '0'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "z.npy").exists()


def test_score_matches_the_golden_file(tmp_path):
    """scored score on the golden inputs reproduces PyTorch's scores."""
    import sys
    sys.path.insert(0, str(REPO / "tools"))
    import safetensors_io as st
    for name in ("ddpmpp_vp_positional", "ncsnpp_ve_skip_28x1", "ddpm_ve_discrete"):
        io, _ = st.load(str(REPO / G / f"{name}.io.safetensors"))
        x, t = tmp_path / "x.npy", tmp_path / "t.npy"
        np.save(x, io["x"])
        np.save(t, io["t"].astype(np.float64))
        out = tmp_path / "s.npy"
        ok("score", "--model", G + f"{name}.safetensors", "--input", x, "--t-file", t, "--out", out)
        s = np.load(out)
        ref = io["score"]
        assert np.abs(s - ref).max() <= 1e-4 * np.abs(ref).max()


def test_likelihood_of_a_png_and_of_data(tmp_path):
    img = (np.arange(28 * 28).reshape(28, 28) % 251).astype(np.uint8)
    png = tmp_path / "x.png"
    write_png(png, img)
    r = ok("likelihood", "--model", NCSNPP, "--input", png, "--rtol", "1e-3", "--atol", "1e-3")
    d = json.loads(r.stdout.splitlines()[0])
    assert np.isfinite(d["bits_per_dim"]) and d["nfe"] > 0
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32))
    r = ok("likelihood", "--model", DDPMPP, "--input", x, "--probes", "2", "--rtol", "1e-3", "--atol", "1e-3")
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(rows) == 2 and all(np.isfinite(row["log_likelihood_nats"]) for row in rows)


def test_inpaint_keeps_the_known_half_and_colorize_keeps_the_gray(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[:, :8] = 255
    pi, pm, out = tmp_path / "i.png", tmp_path / "m.png", tmp_path / "o.npy"
    write_png(pi, img)
    write_png(pm, mask)
    ok("inpaint", "--model", DDPMPP, "--image", pi, "--mask", pm, "--steps", "30", "--out", out)
    x = np.load(out).reshape(3, 16, 16)   # data units: [-1, 1]
    want = img.transpose(2, 0, 1) / 255.0 * 2 - 1
    assert np.abs(x[:, :, :8] - want[:, :, :8]).max() < 1e-6
    assert np.abs(x[:, :, 8:] - want[:, :, 8:]).max() > 0.05
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    pg, oc = tmp_path / "g.png", tmp_path / "c.npy"
    write_png(pg, gray)
    ok("colorize", "--model", DDPMPP, "--image", pg, "--steps", "30", "--out", oc)
    c = np.load(oc).reshape(3, 16, 16)
    g = gray / 255.0 * 2 - 1
    # the gray channel is the input's (to float rounding of the colour transform on values
    # that random weights make large)
    assert np.abs(c.mean(axis=0) - g).max() < 1e-6 * np.abs(c).max() + 1e-5


def test_encode_and_decode_run_on_networks(tmp_path):
    """Shapes, finiteness and determinism.  (The round trip's exactness is tested on the
    analytic models: a random-weight network's probability flow is far from invertible in
    floating point, as its score field is no gradient of a smooth density.)"""
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(2).uniform(-0.5, 0.5, (2, 3, 16, 16)).astype(np.float32))
    z1, z2, back = tmp_path / "z1.npy", tmp_path / "z2.npy", tmp_path / "b.npy"
    ok("encode", "--model", DDPMPP, "--input", x, "--out", z1, "--rtol", "1e-4", "--atol", "1e-4")
    ok("encode", "--model", DDPMPP, "--input", x, "--out", z2, "--rtol", "1e-4", "--atol", "1e-4")
    assert z1.read_bytes() == z2.read_bytes()
    z = np.load(z1)
    assert z.shape == (2, 3, 16, 16) and np.isfinite(z).all()
    ok("decode", "--model", DDPMPP, "--input", z1, "--out", back, "--solver", "heun", "--steps", "20")
    b = np.load(back)
    assert b.shape == (2, 3, 16, 16) and np.isfinite(b).all()


def test_guidance_needs_a_classifier():
    r = run("sample", "--model", DDPMPP, "--label", "0", "--out", "/tmp/never.npy")
    assert r.returncode == 1 and "no classes" in r.stderr


def test_guidance_through_a_classifier_named_in_the_metadata(tmp_path):
    """A score network whose metadata names a classifier is guided by it: the guided score
    minus the plain one is w * grad log p(y | x, sigma(t)), linear in w (the classifier's
    gradient itself is checked against PyTorch in tests/unit/test_nets.c)."""
    import shutil
    import sys
    sys.path.insert(0, str(REPO / "tools"))
    import safetensors_io as st
    tensors, meta = st.load(str(REPO / NCSNPP))
    scored_meta = json.loads(meta["scored"])
    scored_meta["classifier"] = "clf.safetensors"
    model = tmp_path / "guided.safetensors"
    st.save(str(model), tensors, {"scored": json.dumps(scored_meta)})
    shutil.copy(REPO / G / "classifier_28x1.safetensors", tmp_path / "clf.safetensors")
    x, out = tmp_path / "x.npy", {}
    np.save(x, np.random.default_rng(3).uniform(-1, 1, (2, 1, 28, 28)).astype(np.float32))
    for w in ("0", "1", "2"):
        o = tmp_path / f"s{w}.npy"
        args = ["score", "--model", model, "--input", x, "--t", "0.3", "--out", o]
        if w != "0":
            args += ["--label", "3", "--guidance", w]
        ok(*args)
        out[w] = np.load(o).astype(np.float64)
    d1, d2 = out["1"] - out["0"], out["2"] - out["0"]
    assert np.abs(d1).max() > 1e-3
    assert np.abs(d2 - 2 * d1).max() <= 1e-4 * np.abs(d2).max()
    r = ok("models", tmp_path)
    assert "classes=10" in r.stdout and "clf" not in r.stdout
    # the classifier's class names name the labels of a model that has none of its own
    by_name, by_index = tmp_path / "n.npy", tmp_path / "i.npy"
    ok("score", "--model", model, "--input", x, "--t", "0.3", "--out", by_name, "--label", "Sneaker")
    ok("score", "--model", model, "--input", x, "--t", "0.3", "--out", by_index, "--label", "7")
    assert np.array_equal(np.load(by_name), np.load(by_index))
    r = run("score", "--model", model, "--input", x, "--t", "0.3", "--out", by_name, "--label", "Sock")
    assert r.returncode == 1 and "Ankle boot" in r.stderr
