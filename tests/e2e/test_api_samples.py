"""POST /v1/models/{id}/samples: PNG and JSON answers, grids, seeds, every sampler, class
guidance, and the same pixels as the command line for the same settings."""

import json

import numpy as np
import pytest

from e2e_util import (FAST, FM, G2, G2VE, assert_error, cli, cli_sampler_args, grid_size,
                      png_decode, png_info, summary_value, unb64)

pytestmark = pytest.mark.server

SAMPLES = f"/v1/models/{FM}/samples"


def sample_png(api, **body):
    r = api.post(SAMPLES, json={"sampler": FAST, **body}, expect=200)
    assert r.headers["Content-Type"] == "image/png"
    return r


def test_samples_png_single_image_is_28x28_gray(api):
    r = sample_png(api, n=1, seed=11)
    assert png_info(r.content) == (28, 28, 8, 0)
    assert r.headers["X-Seed"] == "11"
    assert float(r.headers["X-NFE"]) == 50
    assert r.headers["X-Job-Id"]
    px = png_decode(r.content)
    assert px.shape == (28, 28, 1) and px.std() > 0


@pytest.mark.parametrize("n", [2, 4, 5, 8])
def test_samples_png_grid_size(api, n):
    r = sample_png(api, n=n, seed=1)
    w, h, depth, ctype = png_info(r.content)
    assert (w, h) == grid_size(n)
    px = png_decode(r.content)
    assert (px[:2] == 255).all() and (px[:, :2] == 255).all()   # the white padding


def test_samples_png_grid_tiles_are_the_json_images(api):
    grid = png_decode(sample_png(api, n=4, seed=12).content)
    r = api.post(SAMPLES, json={"sampler": FAST, "n": 4, "seed": 12, "format": "json"},
                 expect=200)
    for item in r.doc["images"]:
        i = item["index"]
        y, x = 2 + (i // 2) * 30, 2 + (i % 2) * 30
        assert np.array_equal(grid[y:y + 28, x:x + 28], png_decode(unb64(item["png_base64"])))


def test_samples_json_has_images_and_seeds(api):
    r = api.post(SAMPLES, json={"sampler": FAST, "n": 3, "seed": 5, "format": "json"},
                 expect=200)
    assert r.headers["Content-Type"].startswith("application/json")
    doc = r.doc
    assert [im["index"] for im in doc["images"]] == [0, 1, 2]
    assert all(im["seed"] == 5 for im in doc["images"])
    assert doc["nfe"] == 50 and doc["seconds"] >= 0
    assert r.headers["X-Seed"] == "5"
    pics = [png_decode(unb64(im["png_base64"])) for im in doc["images"]]
    assert all(p.shape == (28, 28, 1) for p in pics)
    assert not np.array_equal(pics[0], pics[1])


def test_samples_json_image_has_the_png_pixels(api):
    png = sample_png(api, n=1, seed=6).content
    r = api.post(SAMPLES, json={"sampler": FAST, "n": 1, "seed": 6, "format": "json"},
                 expect=200)
    assert np.array_equal(png_decode(unb64(r.doc["images"][0]["png_base64"])), png_decode(png))


def test_samples_do_not_depend_on_n(api):
    """Sample i uses the stream (seed, i): the first of 4 is the single sample."""
    one = png_decode(sample_png(api, n=1, seed=13).content)
    r = api.post(SAMPLES, json={"sampler": FAST, "n": 4, "seed": 13, "format": "json"},
                 expect=200)
    assert np.array_equal(png_decode(unb64(r.doc["images"][0]["png_base64"])), one)


def test_samples_vector_model_answers_json_floats(api):
    r = api.post(f"/v1/models/{G2}/samples",
                 json={"n": 8, "seed": 3, "sampler": {"steps": 200}}, expect=200)
    doc = r.doc
    assert doc["seed"] == 3 and doc["nfe"] == 200
    x = np.array(doc["samples"])
    assert x.shape == (8, 2) and np.isfinite(x).all()
    radius = np.linalg.norm(x, axis=1)
    assert 0.5 < radius.mean() < 1.5        # the modes lie on the unit circle


def test_samples_vector_model_defaults_come_from_the_card(api):
    r = api.post(f"/v1/models/{G2}/samples", json={}, expect=200)
    assert len(r.doc["samples"]) == 1 and r.doc["nfe"] == 500   # n 1, 500 reverse-diffusion steps


def test_samples_ve_model(api):
    r = api.post(f"/v1/models/{G2VE}/samples",
                 json={"n": 4, "seed": 1, "sampler": {"kind": "pc", "predictor": "reverse_diffusion",
                                                      "corrector": "ald", "steps": 100}},
                 expect=200)
    assert np.array(r.doc["samples"]).shape == (4, 2)


def test_samples_same_seed_gives_identical_bytes(api):
    a = sample_png(api, n=4, seed=42).content
    b = sample_png(api, n=4, seed=42).content
    assert a == b


def test_samples_different_seed_differs(api):
    a = sample_png(api, n=1, seed=42).content
    b = sample_png(api, n=1, seed=43).content
    assert a != b


def test_samples_random_seed_is_echoed_and_reproduces(api):
    r = sample_png(api, n=1)
    seed = int(r.headers["X-Seed"])
    assert 0 <= seed < 2 ** 53
    assert sample_png(api, n=1, seed=seed).content == r.content
    r2 = sample_png(api, n=1)
    assert r2.headers["X-Seed"] != r.headers["X-Seed"]


def test_samples_largest_seed(api):
    r = sample_png(api, n=1, seed=2 ** 53 - 1)
    assert r.headers["X-Seed"] == str(2 ** 53 - 1)


def test_samples_json_content_type_with_charset(api):
    r = api.post(SAMPLES, data=json.dumps({"n": 1, "seed": 1, "sampler": FAST}),
                 headers={"Content-Type": "application/json; charset=utf-8"}, expect=200)
    assert r.headers["Content-Type"] == "image/png"


PC = [(p, c) for p in ("euler_maruyama", "reverse_diffusion", "ancestral", "none")
      for c in ("langevin", "ald", "none") if (p, c) != ("none", "none")]


def _same_as_cli(api, workdir, sampler, seed, label=None, guidance=None, n=1):
    body = {"n": n, "seed": seed, "sampler": sampler}
    args = ["sample", "--model", FM, "--n", n, "--seed", seed, *cli_sampler_args(sampler)]
    if label is not None:
        body["label"], body["guidance"] = label, guidance
        args += ["--label", label, "--guidance", guidance]
    out = workdir / f"cli-{abs(hash(json.dumps(body, sort_keys=True)))}.png"
    summary = cli(*args, "--out", out)
    r = api.post(SAMPLES, json=body, expect=200)
    assert np.array_equal(png_decode(r.content), png_decode(out.read_bytes())), \
        f"server and CLI differ for {body}"
    assert float(r.headers["X-NFE"]) == float(summary_value(summary, "mean_nfe"))
    return r


@pytest.mark.parametrize("predictor,corrector", PC, ids=[f"{p}+{c}" for p, c in PC])
def test_samples_pc_sampler_matches_cli(api, workdir, predictor, corrector):
    _same_as_cli(api, workdir, {"kind": "pc", "predictor": predictor, "corrector": corrector,
                                "steps": 50, "snr": 0.16, "corrector_steps": 1}, seed=21)


@pytest.mark.parametrize("solver", ["rk45", "euler", "heun"])
def test_samples_ode_sampler_matches_cli(api, workdir, solver):
    sampler = {"kind": "ode", "solver": solver}
    sampler.update({"rtol": 1e-3, "atol": 1e-3} if solver == "rk45" else {"steps": 50})
    _same_as_cli(api, workdir, sampler, seed=22)


def test_samples_pc_without_denoise_and_two_corrector_steps_matches_cli(api, workdir):
    _same_as_cli(api, workdir, {"kind": "pc", "predictor": "euler_maruyama", "corrector": "ald",
                                "snr": 0.2, "corrector_steps": 2, "steps": 40, "eps": 2e-3,
                                "denoise": False}, seed=23, n=2)


def test_samples_label_by_name_and_by_index_with_guidance(api, workdir):
    by_name = _same_as_cli(api, workdir, FAST, seed=24, label="Trouser", guidance=2)
    by_index = api.post(SAMPLES, json={"n": 1, "seed": 24, "sampler": FAST, "label": 1,
                                       "guidance": 2}, expect=200)
    assert by_index.content == by_name.content
    unguided = sample_png(api, n=1, seed=24)
    assert unguided.content != by_name.content


def test_samples_guidance_defaults_to_one_with_a_label(api):
    a = api.post(SAMPLES, json={"n": 1, "seed": 25, "sampler": FAST, "label": "Sneaker"},
                 expect=200)
    b = api.post(SAMPLES, json={"n": 1, "seed": 25, "sampler": FAST, "label": 7, "guidance": 1},
                 expect=200)
    assert a.content == b.content


def test_samples_grid_false_with_one_image(api):
    r = api.post(SAMPLES, json={"n": 1, "seed": 1, "sampler": FAST, "grid": False}, expect=200)
    assert png_info(r.content)[:2] == (28, 28)


def test_samples_grid_false_with_several_images_answers_json(api):
    r = api.post(SAMPLES, json={"n": 4, "seed": 3, "sampler": FAST, "grid": False}, expect=200)
    assert r.headers["Content-Type"].startswith("application/json")
    assert len(r.doc["images"]) == 4


def test_samples_grid_false_with_several_png_images_is_422(api):
    r = api.post(SAMPLES, json={"n": 4, "sampler": FAST, "grid": False, "format": "png"})
    assert_error(r, 422, "unsupported_combination")


def test_samples_png_format_on_a_vector_model_is_422(api):
    r = api.post(f"/v1/models/{G2}/samples", json={"n": 1, "format": "png"})
    assert_error(r, 422, "invalid_argument")
