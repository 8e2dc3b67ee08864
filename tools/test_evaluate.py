"""Tests of tools/evaluate.py, ood.py, png_complexity.py and eval_features.py (a few seconds):

    /usr/bin/python3 -m pytest -q tools/test_evaluate.py
"""

import json
import os
import shutil
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import datasets  # noqa: E402
import evaluate as ev  # noqa: E402
import ood  # noqa: E402
import png_complexity as pc  # noqa: E402


def _have_fmnist():
    try:
        datasets.load_fashion_mnist("test")
        return True
    except datasets.DatasetMissing:
        return False


needs_fmnist = pytest.mark.skipif(not _have_fmnist(), reason="dataset-fashion-mnist missing")


# ---- FID ---------------------------------------------------------------------------------------

def test_fid_of_identical_sets_is_zero():
    f = np.random.default_rng(0).standard_normal((400, 16)) @ np.diag(np.arange(1, 17))
    assert abs(ev.fid_from_features(f, f)) < 1e-8


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert ev.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, rel=1e-10)


def test_frechet_distance_non_commuting_2x2():
    # for 2x2 S1 S2 (positive real eigenvalues): tr sqrt(S1 S2) = sqrt(tr(S1 S2) + 2 sqrt(det))
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 1.5]])
    m = s1 @ s2
    tr_sqrt = np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
    mu1, mu2 = np.array([0.3, -1.0]), np.array([1.0, 0.5])
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert ev.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-10)


def test_fid_grows_with_mean_shift():
    rng = np.random.default_rng(2)
    f1, f2 = rng.standard_normal((2000, 4)), rng.standard_normal((2000, 4))
    near = ev.fid_from_features(f1, f2)
    far = ev.fid_from_features(f1, f2 + np.array([1.0, 0, 0, 0]))
    assert near < 0.05 and far == pytest.approx(1.0 + near, abs=0.1)


# ---- AUROC, thresholds, units, labels ----------------------------------------------------------

def test_auroc_hand_computed_with_ties():
    # positives 2.5 (beats 1, 2), 3 (beats 1, 2, ties 3), 4 (beats all): (2 + 2.5 + 3) / 9
    assert ev.auroc([1, 2, 3], [2.5, 3, 4]) == pytest.approx(7.5 / 9)
    assert ev.auroc([1, 2], [3, 4]) == 1.0
    assert ev.auroc([3, 4], [1, 2]) == 0.0
    assert ev.auroc([5, 5], [5]) == 0.5
    with pytest.raises(ev.EvalError):
        ev.auroc([], [1])


def test_threshold_fpr_uses_first_half_for_threshold():
    s = np.concatenate([np.arange(50.0), np.arange(50.0) + 0.5])
    thr, fpr = ev.threshold_fpr(s, 0.9)
    assert thr == pytest.approx(np.quantile(np.arange(50.0), 0.9))
    assert fpr == pytest.approx(np.mean(np.arange(50.0) + 0.5 > thr))


def test_samples_to_u8_matches_engine_rounding():
    x = np.array([-1.0, -1.5, 0.0, 1.0, 2.0, np.nan, 2 * 100 / 255 - 1], dtype=np.float32)
    assert ev.samples_to_u8(x, True).tolist() == [0, 0, 128, 255, 255, 0, 100]
    assert ev.samples_to_u8(np.array([0.0, 0.5, 1.0]), False).tolist() == [0, 128, 255]


def test_label_index():
    assert ev.label_index("Trouser") == 1 and ev.label_index("ankle boot") == 9
    assert ev.label_index("3") == 3 and ev.label_index(7) == 7
    for bad in ("10", "hat", "-1"):
        with pytest.raises(ev.EvalError):
            ev.label_index(bad)


def test_cli_errors_are_one_line_and_nonzero(tmp_path, capsys):
    assert ev.main(["fid", "--samples", str(tmp_path / "missing.npy")]) == 1
    np.save(tmp_path / "bad.npy", np.zeros((4, 28, 28), np.float32))
    assert ev.main(["agreement", "--samples", str(tmp_path / "bad.npy"), "--label", "0"]) == 1
    assert ev.main(["agreement", "--samples", str(tmp_path / "bad.npy"), "--label", "hat"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("evaluate: ") for line in err)


def test_load_samples_units(tmp_path):
    p = tmp_path / "s.npy"
    np.save(p, np.full((2, 1, 4, 4), 0.2, np.float32))
    assert ev.load_samples(str(p))[1] is False
    with open(tmp_path / "s.json", "w") as f:
        json.dump({"centered": True}, f)
    assert ev.load_samples(str(p))[1] is True
    assert ev.load_samples(str(p), "unit")[1] is False


def test_fid_row_carries_sampler_from_sidecar(tmp_path):
    p = tmp_path / "s.npy"
    assert ev.sampler_of_samples(str(p)) == {}
    with open(tmp_path / "s.json", "w") as f:
        json.dump({"model": "models/m.safetensors", "sampler_args": ["--sampler", "ode"],
                   "mean_nfe": 41.0, "centered": True}, f)
    assert ev.sampler_of_samples(str(p)) == {"model": "models/m.safetensors",
                                             "sampler": "--sampler ode", "nfe": 41.0}
    with open(tmp_path / "s.json", "w") as f:
        json.dump({"sampler_args": ["--sampler", "pc", "--steps", "100"], "mean_nfe": 100.0,
                   "summary_chunk0": "scored sample: model=m n=100 seed=0 sampler=pc steps=100 "
                                     "eps=0.01 denoise=on mean_nfe=100.0"}, f)
    assert ev.sampler_of_samples(str(p)) == {"sampler": "--sampler pc --steps 100", "eps": 0.01,
                                             "nfe": 100.0}
    assert ev.effective_eps("scored sample: eps=1e-05 denoise=on") == 1e-5
    assert ev.effective_eps("no such field") is None
    line = ("scored sample: model=fmnist-vp n=100 seed=0 sampler=ode solver=heun steps=50 "
            "eps=0.001 denoise=on mean_nfe=101.0 seconds=32.694 out=x.npy")
    assert ev.summary_number(line, "mean_nfe") == 101.0
    assert ev.summary_number(line, "seconds") == 32.694
    assert ev.summary_number(line, "steps") == 50.0
    assert ev.summary_number("xeps=0.5 mean_nfe=abc", "eps") is None  # whole keys, numbers only
    assert ev.summary_number("xeps=0.5 mean_nfe=abc", "mean_nfe") is None


def test_card_quality_fid_rows(tmp_path):
    import card_quality
    with open(tmp_path / "side.json", "w") as f:
        json.dump({"sampler_args": ["--steps", "20"], "mean_nfe": 41.0}, f)
    base = {"n": 2000, "fid": 2.0, "floor": 1.0, "ratio": 2.0, "features": "f"}
    rs = [dict(base, samples="runs/eval/a-1.npy", sampler="--sampler pc", eps=0.004, nfe=251.0),
          dict(base, samples=str(tmp_path / "side.npy")),
          dict(base, samples="runs/eval/b-1.npy"),
          dict(base, samples="runs/eval/c-1.npy")]
    with open(tmp_path / "fid.jsonl", "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rs))
    got = card_quality.fid_section(str(tmp_path / "fid.jsonl"),
                                   ["runs/eval/a-", str(tmp_path), "runs/eval/b-"])
    assert [(g["sampler"], g.get("eps"), g["nfe"]) for g in got] == [
        ("--sampler pc", 0.004, 251.0), ("--steps 20", None, 41.0), ("unknown", None, None)]
    assert len(card_quality.fid_section(str(tmp_path / "fid.jsonl"), [""])) == 4


# ---- OOD sets ----------------------------------------------------------------------------------

def test_ood_synthetic_sets_shapes_and_determinism():
    a, b = ood.load("uniform-noise"), ood.load("uniform-noise")
    assert a.shape == (1000, 1, 28, 28) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert 120 < a.mean() < 135
    c = ood.load("constant")
    assert c.shape == (256, 1, 28, 28) and c.dtype == np.uint8
    assert np.array_equal(c[:, 0, 0, 0], np.arange(256)) and (c == c[:, :, :1, :1]).all()
    with pytest.raises(ValueError):
        ood.load("nope")


@needs_fmnist
def test_ood_vflip():
    x = ood.load("fmnist-vflip")
    t, _ = datasets.load_fashion_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and np.array_equal(x[5, 0], t[5][::-1])


def test_ood_emoji_gray():
    try:
        x = ood.load("emoji-gray")
    except datasets.DatasetMissing:
        pytest.skip("emoji font missing")
    rgb, _ = datasets.load_emoji32("all")
    assert x.shape == (len(rgb), 1, 28, 28) and x.dtype == np.uint8
    assert np.array_equal(x[:3], ood.emoji_gray(rgb[:3]))
    assert x.mean() > 150  # white backgrounds


# ---- PNG complexity ----------------------------------------------------------------------------

def test_png_size_constant_and_formula():
    img = np.full((1, 1, 28, 28), 7, np.uint8)
    n = pc.png_size(img[0, 0])
    assert 57 < n < 120
    assert pc.complexity_bpd(img)[0] == pytest.approx(8 * n / 784)
    noise = np.random.default_rng(0).integers(0, 256, (1, 3, 32, 32), dtype=np.uint8)
    assert pc.png_sizes(noise)[0] > 3072  # incompressible


def test_filter_choice_on_ramp():
    ramp = np.tile(np.arange(28, dtype=np.uint8) * 9, (28, 1))[:, :, None]
    ftype, _ = pc.filter_rows(ramp)
    assert ftype[0] == 1 and (ftype[1:] == 2).all()  # Sub on row 0, then Up (all-zero rows)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_png_sizes_match_engine_writer():
    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (6, 1, 28, 28), dtype=np.uint8),
            (rng.integers(0, 4, (6, 3, 32, 32)) * 80).astype(np.uint8),
            rng.integers(0, 256, (4, 3, 1, 5), dtype=np.uint8),
            rng.integers(0, 256, (4, 1, 5, 1), dtype=np.uint8),
            ood.load("constant")[::37]]
    root = os.path.dirname(HERE)
    for x in imgs:
        assert np.array_equal(pc.png_sizes(x), pc.engine_png_sizes(x, root))


# ---- feature extractors and anomaly ------------------------------------------------------------

def test_feature_extractors_shapes():
    import eval_features as ef
    if os.path.isfile(ef.EMOJI_NET):
        _, fn = ef.feature_fn("emoji-32")
        x = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
        f = fn(x)
        assert f.shape == (3, 352) and np.isfinite(f).all()
    if os.path.isfile(ef.FMNIST_CNN):
        _, fn = ef.feature_fn("fashion-mnist")
        f = fn(np.zeros((2, 1, 28, 28), np.uint8))
        assert f.shape == (2, 128) and np.isfinite(f).all()


@needs_fmnist
def test_anomaly_on_synthetic_rows(tmp_path):
    p = tmp_path / "b.jsonl"
    with open(p, "w") as f:
        for i in range(10):
            f.write(json.dumps({"set": "fmnist-test", "index": i, "bits_per_dim": 3.0 + 0.01 * i}) + "\n")
            f.write(json.dumps({"set": "constant", "index": i, "bits_per_dim": 1.0}) + "\n")
    a = ev.build_parser().parse_args(["anomaly", "--in", str(p), "--ood-sets", "constant"])
    out = ev.cmd_anomaly(a)
    assert out["ood"]["constant"]["auroc_bpd"] == 0.0  # constant images get lower bits/dim
    assert 0.0 <= out["ood"]["constant"]["auroc_complexity"] <= 1.0
    want = np.quantile(3 + 0.01 * np.arange(5), 0.99)
    assert out["thresholds"]["bpd"]["threshold"] == pytest.approx(want, abs=1e-4)
    assert out["thresholds"]["bpd"]["fpr_held_out"] == 1.0
    # the card's histograms count every in-distribution score once
    h = out["thresholds"]["bpd"]["histogram"]
    assert sum(h["counts"]) == 10 and len(h["edges"]) == len(h["counts"]) + 1
    assert h["edges"][0] == pytest.approx(3.0) and h["edges"][-1] == pytest.approx(3.09)
