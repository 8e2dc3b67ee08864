"""The bundled trained models through the server (`server` fixture: models/): pictures that look
like their data, class-conditional samples of the requested class, inpainting that continues the
kept half, colorizations that keep the input's gray levels, anomaly verdicts.  The analytic
models stay the exactness tests elsewhere; these check what a user sees.

Reference pictures come from shipped files only (no data set is installed by `make test`): the
Fashion-MNIST class means stored in models/fmnist-gmm.json and the emoji-vp sample grid."""

import json

import numpy as np
import pytest

from e2e_util import REPO, b64, png_decode, png_encode, unb64

pytestmark = pytest.mark.server

VP = "fmnist-vp"
VE = "fmnist-ve"
EMOJI = "emoji-vp"
ODE = {"kind": "ode", "solver": "heun", "steps": 20}


def class_means():
    """Fashion-MNIST class means as uint8 [10, 28, 28] (fmnist-gmm's means, centered units)."""
    g = json.loads((REPO / "models/fmnist-gmm.json").read_text())
    m = (np.array(g["means"], dtype=np.float64).reshape(10, 28, 28) + 1) * 127.5
    return np.clip(np.rint(m), 0, 255).astype(np.uint8), g["labels"]


def images_of(doc):
    return [png_decode(unb64(im["png_base64"]))[:, :, 0].astype(np.float64) for im in doc["images"]]


def require(api, model):
    ids = [m["id"] for m in api.get("/v1/models", expect=200).doc["models"]]
    if model not in ids:
        pytest.skip(f"{model} is not in models/")
    return api.get(f"/v1/models/{model}", expect=200).doc


def assert_fashion_mnist_like(ims, n):
    """Fashion-MNIST pictures are a dark background around a bright object: the mean pixel and
    the dark fraction sit near the data's (training set: mean 72.9, about half the pixels under
    10), far from what noise or a blank image gives; and samples of one request differ."""
    assert len(ims) == n and ims[0].shape == (28, 28)
    for im in ims:
        assert 20 < im.mean() < 160, im.mean()
        assert 0.15 < (im < 10).mean() < 0.9, (im < 10).mean()
        assert im.max() > 150  # a bright object, not a gray haze
    assert min(np.abs(a - b).mean() for i, a in enumerate(ims) for b in ims[i + 1:]) > 5


def test_fmnist_vp_samples_look_like_fashion_mnist(api):
    require(api, VP)
    r = api.post(f"/v1/models/{VP}/samples", json={"n": 8, "seed": 11, "format": "json",
                                                   "sampler": ODE}, expect=200)
    assert_fashion_mnist_like(images_of(r.doc), 8)


def test_fmnist_ve_pc_samples_look_like_fashion_mnist(api):
    """fmnist-ve (NCSN++, VE SDE) with the sampler it was designed for: PC reverse diffusion +
    Langevin (100 noise levels here, to keep the test short)."""
    info = require(api, VE)
    assert info["sde"]["type"] == "ve"
    pc = {"kind": "pc", "predictor": "reverse_diffusion", "corrector": "langevin", "snr": 0.16,
          "steps": 100}
    r = api.post(f"/v1/models/{VE}/samples", json={"n": 4, "seed": 5, "format": "json",
                                                   "sampler": pc}, expect=200)
    assert_fashion_mnist_like(images_of(r.doc), 4)


def test_fmnist_vp_class_conditional_samples_are_of_the_class(api):
    """Guided by fmnist-classifier, samples of two well-separated classes are mostly nearest to
    the requested class's Fashion-MNIST mean image, far more often than the same seeds drawn
    without guidance are (nearest-mean is a crude classifier: it errs on textured samples)."""
    info = require(api, VP)
    if "Trouser" not in (info.get("labels") or []):
        pytest.skip("fmnist-vp has no guidance classifier")
    means, labels = class_means()
    flat = means.reshape(10, -1).astype(np.float64)

    def hits(label, guided):
        body = {"n": 8, "seed": 5, "format": "json", "sampler": ODE}
        if guided:
            body.update(label=label, guidance=2)
        r = api.post(f"/v1/models/{VP}/samples", json=body, expect=200)
        return sum(labels[int(np.argmin(((flat - im.reshape(1, -1)) ** 2).sum(1)))] == label
                   for im in images_of(r.doc))

    guided = sum(hits(label, True) for label in ("Trouser", "Bag"))
    plain = sum(hits(label, False) for label in ("Trouser", "Bag"))
    print(f"guided {guided}/16, unguided {plain}/16 nearest to the class mean")
    assert guided >= 10 and guided >= plain + 5, (guided, plain)


def test_fmnist_vp_inpainting_continues_the_kept_half(api):
    """Keep the left half of the Trouser class mean and regenerate the right: the generated half
    correlates with the true right half, and the kept half comes back exactly."""
    require(api, VP)
    means, labels = class_means()
    src = means[labels.index("Trouser")]
    mask = np.zeros((28, 28), np.uint8)
    mask[:, :14] = 255
    r = api.post(f"/v1/models/{VP}/inpaint", json={
        "image": b64(png_encode(src)), "mask": b64(png_encode(mask)), "seed": 2, "n": 2,
        "format": "json", "sampler": {"kind": "pc", "predictor": "reverse_diffusion",
                                      "corrector": "langevin", "steps": 100}}, expect=200)
    for out in images_of(r.doc):
        assert np.array_equal(out[:, :14], src[:, :14])
        corr = np.corrcoef(out[:, 14:].ravel(), src[:, 14:].astype(np.float64).ravel())[0, 1]
        assert corr > 0.5, corr


def test_fmnist_vp_anomaly_flags_noise_and_passes_a_garment(api):
    """The card's default threshold: uniform noise is an anomaly, a class-mean garment is not."""
    info = require(api, VP)
    if "anomaly" not in (info.get("card") or {}):
        pytest.skip("fmnist-vp's card has no anomaly threshold yet")
    means, labels = class_means()
    noise = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    r = api.post(f"/v1/models/{VP}/anomaly", json={
        "images": [b64(png_encode(means[labels.index("Sneaker")])), b64(png_encode(noise))],
        "rtol": 1e-3, "atol": 1e-3}, expect=200)
    garment, flat = r.doc["results"]
    assert flat["is_anomaly"] is True and garment["is_anomaly"] is False
    assert flat["bits_per_dim"] > garment["bits_per_dim"] + 2


def emoji_tile(k):
    """A 32x32 RGB tile of the shipped emoji-vp sample grid (8 per row, 2 px padding)."""
    grid = png_decode((REPO / "models/emoji-vp-samples.png").read_bytes())
    r, c = divmod(k, 8)
    return grid[2 + r * 34:2 + r * 34 + 32, 2 + c * 34:2 + c * 34 + 32, :3]


def gray_of(rgb):
    """The gray level colorization keeps: the channel mean (spec 6.2, decoupled channel 0)."""
    return rgb.astype(np.float64).mean(axis=-1)


def test_emoji_vp_samples_are_colorful_pictures(api):
    require(api, EMOJI)
    r = api.post(f"/v1/models/{EMOJI}/samples", json={"n": 4, "seed": 3, "format": "json",
                                                      "sampler": ODE}, expect=200)
    for im in (png_decode(unb64(i["png_base64"])).astype(np.float64) for i in r.doc["images"]):
        assert im.shape == (32, 32, 3)
        # emoji sit on white: the border is mostly light, and the picture has color in it
        border = np.concatenate([im[0], im[-1], im[:, 0], im[:, -1]])
        assert border.mean() > 150, border.mean()
        assert (im.max(axis=2) - im.min(axis=2)).max() > 60


def test_emoji_vp_colorization_keeps_the_gray_levels(api):
    """Colorize the gray version of an emoji: each result's gray level (channel mean) matches
    the input's up to 8-bit rounding and clipping, and the result has colors."""
    require(api, EMOJI)
    if not (REPO / "models/emoji-vp-samples.png").exists():
        pytest.skip("models/emoji-vp-samples.png is missing")
    gray = np.clip(np.rint(gray_of(emoji_tile(5))), 0, 255).astype(np.uint8)
    r = api.post(f"/v1/models/{EMOJI}/colorize", json={
        "image": b64(png_encode(gray)), "n": 2, "seed": 9, "format": "json",
        "sampler": {"kind": "pc", "predictor": "reverse_diffusion", "corrector": "langevin",
                    "steps": 100}}, expect=200)
    outs = [png_decode(unb64(i["png_base64"])) for i in r.doc["images"]]
    for out in outs:
        assert out.shape == (32, 32, 3)
        assert np.abs(gray_of(out) - gray).mean() < 3, np.abs(gray_of(out) - gray).mean()
        assert (out.max(axis=2).astype(int) - out.min(axis=2)).max() > 30  # colors, not gray
    assert not np.array_equal(outs[0], outs[1])
