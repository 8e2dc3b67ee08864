"""POST /v1/models/{id}/inpaint and /colorize: multipart and JSON bodies, kept pixels come back
exactly, alpha masks, size mismatches, vector inpainting, and the CLI's pixels."""

import json

import numpy as np
import pytest

from e2e_util import (FAST, FM, G2, assert_error, b64, cli, png_decode, png_encode, png_info,
                      unb64)

pytestmark = pytest.mark.server

INPAINT = f"/v1/models/{FM}/inpaint"
PARAMS = {"seed": 4, "sampler": FAST}


def multipart(image, mask=None, params=None):
    files = {"image": ("image.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    if params is not None:
        files["params"] = (None, json.dumps(params), "application/json")
    return files


def test_inpaint_multipart_keeps_the_known_half(api, fmnist_png, half_mask_png):
    r = api.post(INPAINT, files=multipart(fmnist_png, half_mask_png, PARAMS), expect=200)
    assert r.headers["Content-Type"] == "image/png"
    assert png_info(r.content)[:2] == (28, 28)
    out, src = png_decode(r.content), png_decode(fmnist_png)
    assert np.array_equal(out[:, :14], src[:, :14])
    assert r.headers["X-Seed"] == "4"


def test_inpaint_matches_cli(api, workdir, fmnist_png, half_mask_png):
    (workdir / "inp.png").write_bytes(fmnist_png)
    (workdir / "mask.png").write_bytes(half_mask_png)
    cli("inpaint", "--model", FM, "--image", workdir / "inp.png", "--mask", workdir / "mask.png",
        "--seed", 4, "--steps", 50, "--predictor", "reverse_diffusion", "--corrector", "none",
        "--out", workdir / "inp-cli.png")
    r = api.post(INPAINT, files=multipart(fmnist_png, half_mask_png, PARAMS), expect=200)
    assert np.array_equal(png_decode(r.content), png_decode((workdir / "inp-cli.png").read_bytes()))


def test_inpaint_multipart_without_params_uses_defaults(api, fmnist_png, half_mask_png):
    r = api.post(INPAINT, files=multipart(fmnist_png, half_mask_png), expect=200)
    assert np.array_equal(png_decode(r.content)[:, :14], png_decode(fmnist_png)[:, :14])


def test_inpaint_json_base64_keeps_the_known_half(api, fmnist_png, half_mask_png):
    body = {"image": b64(fmnist_png), "mask": b64(half_mask_png), "n": 2, "format": "json",
            **PARAMS}
    r = api.post(INPAINT, json=body, expect=200)
    src = png_decode(fmnist_png)
    assert [im["index"] for im in r.doc["images"]] == [0, 1]
    outs = [png_decode(unb64(im["png_base64"])) for im in r.doc["images"]]
    for out in outs:
        assert out.shape == (28, 28, 1)
        assert np.array_equal(out[:, :14], src[:, :14])
    assert not np.array_equal(outs[0], outs[1])


def test_inpaint_json_and_multipart_agree(api, fmnist_png, half_mask_png):
    a = api.post(INPAINT, files=multipart(fmnist_png, half_mask_png, PARAMS), expect=200)
    b = api.post(INPAINT, json={"image": b64(fmnist_png), "mask": b64(half_mask_png), **PARAMS},
                 expect=200)
    assert a.content == b.content


def test_inpaint_accepts_a_data_url(api, fmnist_png, half_mask_png):
    body = {"image": "data:image/png;base64," + b64(fmnist_png),
            "mask": "data:image/png;base64," + b64(half_mask_png), **PARAMS}
    r = api.post(INPAINT, json=body, expect=200)
    assert np.array_equal(png_decode(r.content)[:, :14], png_decode(fmnist_png)[:, :14])


def test_inpaint_rgba_transparent_area_is_generated_without_a_mask(api, fmnist_png):
    gray = png_decode(fmnist_png)[:, :, 0]
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[:, :, 0] = rgba[:, :, 1] = rgba[:, :, 2] = gray
    rgba[:, :14, 3] = 255                       # opaque: keep
    rgba[:, 14:, 3] = 0                         # transparent: generate
    rgba[:, 14:, :3] = 17                       # garbage under the transparent part
    r = api.post(INPAINT, files=multipart(png_encode(rgba), None, PARAMS), expect=200)
    out = png_decode(r.content)
    assert out.shape == (28, 28, 1)
    assert np.array_equal(out[:, :14, 0], gray[:, :14])
    # the same as the gray image with the half mask
    m = np.zeros((28, 28), dtype=np.uint8)
    m[:, :14] = 255
    ref = api.post(INPAINT, files=multipart(fmnist_png, png_encode(m), PARAMS), expect=200)
    assert r.content == ref.content


def test_inpaint_without_mask_or_alpha_is_422(api, fmnist_png):
    assert_error(api.post(INPAINT, files=multipart(fmnist_png, None, PARAMS)), 422,
                 "invalid_argument")


def test_inpaint_mask_size_mismatch_is_422(api, fmnist_png):
    mask = png_encode(np.full((20, 20), 255, dtype=np.uint8))
    assert_error(api.post(INPAINT, files=multipart(fmnist_png, mask, PARAMS)), 422,
                 "shape_mismatch")
    assert_error(api.post(INPAINT, json={"image": b64(fmnist_png), "mask": b64(mask)}), 422,
                 "shape_mismatch")


def test_inpaint_image_of_the_wrong_size_is_422(api):
    img = png_encode(np.full((20, 20), 128, dtype=np.uint8))
    mask = png_encode(np.full((20, 20), 255, dtype=np.uint8))
    assert_error(api.post(INPAINT, files=multipart(img, mask, PARAMS)), 422, "shape_mismatch")


def test_inpaint_with_an_ode_sampler_is_422(api, fmnist_png, half_mask_png):
    body = {"image": b64(fmnist_png), "mask": b64(half_mask_png), "sampler": {"kind": "ode"}}
    assert_error(api.post(INPAINT, json=body), 422, "unsupported_combination")


def test_inpaint_vector_model_keeps_the_known_coordinate(api):
    body = {"data": [0.7, 0.3], "mask": [1, 0], "n": 4, "seed": 2,
            "sampler": {"kind": "pc", "predictor": "reverse_diffusion", "corrector": "none",
                        "steps": 100}}
    r = api.post(f"/v1/models/{G2}/inpaint", json=body, expect=200)
    x = np.array(r.doc["samples"], dtype=np.float64)
    assert x.shape == (4, 2)
    assert (x[:, 0].astype(np.float32) == np.float32(0.7)).all()
    assert len(set(x[:, 1].tolist())) == 4       # the generated coordinate varies


def test_inpaint_vector_mask_shape_mismatch_is_422(api):
    r = api.post(f"/v1/models/{G2}/inpaint", json={"data": [0.7, 0.3], "mask": [1, 0, 1]})
    assert_error(r, 422, "shape_mismatch")


# ---- colorize -----------------------------------------------------------------------------------

def test_colorize_on_a_one_channel_model_is_422(api, fmnist_png):
    assert_error(api.post(f"/v1/models/{FM}/colorize", json={"image": b64(fmnist_png)}), 422,
                 "unsupported_combination")
    r = api.post(f"/v1/models/{FM}/colorize",
                 files={"image": ("g.png", fmnist_png, "image/png")})
    assert_error(r, 422, "unsupported_combination")


def test_colorize_keeps_the_gray_level(aux_api, aux_models, rgb_png, workdir):
    gray = np.round(png_decode(rgb_png).astype(float).mean(axis=2)).astype(np.uint8)
    gray_png = png_encode(gray)
    params = {"seed": 2, "sampler": {"kind": "pc", "predictor": "reverse_diffusion",
                                     "corrector": "langevin", "steps": 100}}
    r = aux_api.post("/v1/models/rgb-gmm/colorize",
                     files={"image": ("g.png", gray_png, "image/png"),
                            "params": (None, json.dumps(params), "application/json")},
                     expect=200)
    w, h, depth, ctype = png_info(r.content)
    assert (w, h, ctype) == (8, 8, 2)
    out = png_decode(r.content).astype(float)
    inside = ((out > 0) & (out < 255)).all(axis=2)     # not clipped by the 8-bit range
    assert inside.mean() > 0.5
    assert np.abs(out.mean(axis=2) - gray)[inside].max() <= 1.0
    # the command line gives the same pixels
    (workdir / "gray8.png").write_bytes(gray_png)
    cli("colorize", "--model", aux_models / "rgb-gmm.json", "--image", workdir / "gray8.png",
        "--seed", 2, "--steps", 100, "--predictor", "reverse_diffusion", "--corrector", "langevin",
        "--out", workdir / "col-cli.png")
    assert np.array_equal(png_decode((workdir / "col-cli.png").read_bytes()), out.astype(np.uint8))


def test_colorize_json_with_an_rgb_image_uses_its_channel_mean(aux_api, rgb_png):
    gray = np.round(png_decode(rgb_png).astype(float).mean(axis=2)).astype(np.uint8)
    a = aux_api.post("/v1/models/rgb-gmm/colorize",
                     json={"image": b64(rgb_png), "seed": 3, "n": 2, "format": "json",
                           "sampler": {"steps": 100}}, expect=200)
    assert [im["index"] for im in a.doc["images"]] == [0, 1]
    for im in a.doc["images"]:
        out = png_decode(unb64(im["png_base64"])).astype(float)
        assert out.shape == (8, 8, 3)
        inside = ((out > 0) & (out < 255)).all(axis=2)
        assert np.abs(out.mean(axis=2) - gray)[inside].max() <= 1.5


def test_colorize_image_of_the_wrong_size_is_422(aux_api, fmnist_png):
    assert_error(aux_api.post("/v1/models/rgb-gmm/colorize", json={"image": b64(fmnist_png)}),
                 422, "shape_mismatch")
