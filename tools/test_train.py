"""Tests of the training and model-file tools: the emoji-32 data set, tools/train.py (score
networks and the guidance classifier, export, bit-for-bit resume), tools/model_meta.py and
tools/eval_likelihood.py.  Run: /usr/bin/python3 -m pytest -q tools/test_train.py
(needs python3-torch, dataset-fashion-mnist, fonts-noto-color-emoji, python3-fonttools; the
likelihood test also needs ./scored built)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import datasets  # noqa: E402
import model_meta  # noqa: E402
import nets  # noqa: E402
import safetensors_io as st  # noqa: E402

PY = sys.executable

TINY_SCORE = {
    "model": {"name": "ncsnpp", "nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
              "attn_resolutions": [], "resamp_with_conv": True, "resblock_type": "biggan",
              "fir": False, "skip_rescale": True, "embedding_type": "positional",
              "progressive": "none", "progressive_input": "none", "progressive_combine": "sum",
              "init_scale": 0.0, "conditional": True, "scale_by_sigma": False, "dropout": 0.1,
              "num_scales": 1000, "beta_min": 0.1, "beta_max": 20.0, "ema_rate": 0.9},
    "data": {"dataset": "fashion-mnist", "image_size": 28, "num_channels": 1, "centered": True,
             "uniform_dequantization": True, "random_flip": True},
    "training": {"sde": "vpsde", "continuous": True, "batch_size": 4, "n_iters": 4, "seed": 3},
    "optim": {"lr": 1e-3, "warmup": 2, "grad_clip": 1.0},
}

TINY_CLASSIFIER = {
    "model": {"name": "classifier", "nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
              "num_classes": 10, "fourier_scale": 16.0, "dropout": 0.0, "beta_min": 0.1,
              "beta_max": 20.0, "ema_rate": 0.9},
    "data": {"dataset": "fashion-mnist", "image_size": 28, "num_channels": 1, "centered": True,
             "uniform_dequantization": True},
    "training": {"sde": "vpsde", "continuous": True, "batch_size": 8, "n_iters": 3, "seed": 1},
    "optim": {"lr": 1e-3, "warmup": 1},
}


def train(tmp_path, cfg, name, *extra):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    args = [PY, os.path.join(HERE, "train.py"), "--name", name, "--runs-dir", str(tmp_path / "runs"),
            "--threads", "1", "--log-every", "1", *extra]
    if "--resume" not in extra:
        args += ["--config", str(path)]
    p = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr + p.stdout
    return p


def test_emoji32_split_is_fixed_and_disjoint():
    tr, tr_names = datasets.load_emoji32("train")
    te, te_names = datasets.load_emoji32("test")
    assert tr.shape[1:] == te.shape[1:] == (3, 32, 32) and tr.dtype == np.uint8
    assert not set(tr_names) & set(te_names)
    assert 0.07 < len(te) / (len(tr) + len(te)) < 0.13
    assert all(datasets.emoji_in_test_split(n) for n in te_names)
    # composited on white: the corners of most glyphs are white
    corners = te[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 255).all(axis=(1, 2)).mean() > 0.8
    again, _ = datasets.load_emoji32("test")
    assert np.array_equal(te, again)


def test_score_training_exports_and_resumes_bit_for_bit(tmp_path):
    train(tmp_path, TINY_SCORE, "straight", "--steps", "4", "--export", str(tmp_path / "a.safetensors"))
    train(tmp_path, TINY_SCORE, "split", "--steps", "2")
    train(tmp_path, TINY_SCORE, "split", "--resume", "--steps", "4",
          "--export", str(tmp_path / "b.safetensors"))
    a, meta_a = st.load(str(tmp_path / "a.safetensors"))
    b, _ = st.load(str(tmp_path / "b.safetensors"))
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    meta = json.loads(meta_a["scored"])
    assert meta["kind"] == "network" and meta["card"]["training"]["steps"] == 4
    assert "random horizontal flips" in meta["card"]["data"]
    nets.load_model_file(str(tmp_path / "a.safetensors"))  # every tensor matches the config


def test_init_from_starts_from_a_model_files_weights(tmp_path):
    a = tmp_path / "a.safetensors"
    train(tmp_path, TINY_SCORE, "first", "--steps", "2", "--export", str(a))
    b = tmp_path / "b.safetensors"
    train(tmp_path, TINY_SCORE, "second", "--steps", "0", "--init-from", str(a), "--export", str(b))
    ta, _ = st.load(str(a))
    tb, _ = st.load(str(b))
    assert set(ta) == set(tb) and all(np.array_equal(ta[k], tb[k]) for k in ta)
    other = json.loads(json.dumps(TINY_SCORE))
    other["model"]["nf"] = 16
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    p = subprocess.run([PY, os.path.join(HERE, "train.py"), "--config", str(path), "--name", "bad",
                        "--runs-dir", str(tmp_path / "runs"), "--steps", "0", "--init-from", str(a)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1 and "nf" in p.stderr


def test_classifier_training_exports_labels_and_accuracy(tmp_path):
    out = tmp_path / "clf.safetensors"
    train(tmp_path, TINY_CLASSIFIER, "clf", "--steps", "3", "--export", str(out))
    model, meta = nets.load_model_file(str(out))
    assert meta["kind"] == "classifier" and meta["labels"] == datasets.FMNIST_LABELS
    acc = meta["card"]["test_accuracy"]
    assert set(acc) == {"clean", "t=0.1", "t=0.25", "t=0.5"}
    assert all(0.0 <= v <= 1.0 for v in acc.values())
    assert "cross-entropy" in meta["card"]["training"]["objective"]


def test_model_meta_edits_the_card_and_keeps_the_tensors(tmp_path):
    src = os.path.join(ROOT, "tests/data/golden/ncsnpp_ve_skip_28x1.safetensors")
    clf = os.path.join(ROOT, "tests/data/golden/classifier_28x1.safetensors")
    m, c = tmp_path / "m.safetensors", tmp_path / "c.safetensors"
    m.write_bytes(open(src, "rb").read())
    c.write_bytes(open(clf, "rb").read())
    before, _ = st.load(str(m))
    assert model_meta.main(["set", str(m), "--card", '{"quality": {"fid": 1.5}}',
                            "--classifier", "c.safetensors"]) == 0
    after, raw = st.load(str(m))
    meta = json.loads(raw["scored"])
    assert meta["card"]["quality"] == {"fid": 1.5} and meta["classifier"] == "c.safetensors"
    assert set(before) == set(after) and all(np.array_equal(before[k], after[k]) for k in before)
    # a score network is not a classifier: refused, file unchanged
    assert model_meta.main(["set", str(m), "--classifier", "m.safetensors"]) == 1
    assert json.loads(st.load(str(m))[1]["scored"]) == meta
    # renamed; a name with a slash is refused and changes nothing
    assert model_meta.main(["set", str(m), "--name", "fmnist-vp"]) == 0
    assert json.loads(st.load(str(m))[1]["scored"])["name"] == "fmnist-vp"
    assert model_meta.main(["set", str(m), "--name", "a/b"]) == 1
    assert json.loads(st.load(str(m))[1]["scored"])["name"] == "fmnist-vp"


def test_eval_likelihood_matches_the_engine_and_resumes(tmp_path):
    import eval_likelihood as ev
    scored = os.path.join(ROOT, "scored")
    if not os.path.exists(scored):
        pytest.skip("./scored is not built")
    out = tmp_path / "r.jsonl"
    model = os.path.join(ROOT, "models/fmnist-gmm.json")
    rows = ev.evaluate(model, "fmnist-test", 3, str(out), centered=True, chunk=2, log=lambda *_: None)
    assert [r["index"] for r in rows] == [0, 1, 2]
    again = ev.evaluate(model, "fmnist-test", 3, str(out), centered=True, log=lambda *_: None)
    assert again == rows and len(out.read_text().splitlines()) == 3
    # an image's probe is keyed by its index, so the chunking does not change its result
    other = ev.evaluate(model, "fmnist-test", 3, str(tmp_path / "o.jsonl"), centered=True, chunk=3,
                        log=lambda *_: None)
    assert [r["bits_per_dim"] for r in other] == [r["bits_per_dim"] for r in rows]
    # two shards sharing one file give the same rows as one process
    shared = tmp_path / "s.jsonl"
    odd = ev.evaluate(model, "fmnist-test", 3, str(shared), centered=True, shard=(1, 2), log=lambda *_: None)
    assert [r["index"] for r in odd] == [1]
    both = ev.evaluate(model, "fmnist-test", 3, str(shared), centered=True, shard=(0, 2), log=lambda *_: None)
    assert [(r["index"], r["bits_per_dim"]) for r in both] == [(r["index"], r["bits_per_dim"]) for r in rows]
    assert ev.main(["--model", model, "--out", str(shared), "--shard", "2/2"]) == 2
    # bits/dim is the engine's nats converted as the engine converts dequantized PNGs (spec 5)
    for r in rows:
        assert r["bits_per_dim"] == pytest.approx(
            -r["log_likelihood_nats"] / (784 * np.log(2)) + 7.0, abs=1e-6)
    assert all(np.isfinite(r["bits_per_dim"]) and r["bits_per_dim"] > 0 for r in rows)
