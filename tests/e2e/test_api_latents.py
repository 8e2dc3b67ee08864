"""POST /v1/models/{id}/encode and /decode: JSON and .npy bodies and answers, the round trip
through the probability-flow ODE, image models, and bad inputs."""

import numpy as np
import pytest

from e2e_util import (FM, G2, assert_error, b64, npy_bytes, npy_load, png_decode, png_info, unb64)

pytestmark = pytest.mark.server

# near the modes: far from them (log density -20) the flow stretches so much that even
# rtol 1e-7 does not bring a point back
X = np.array([[0.9, 0.1], [-0.5, 0.6], [0.0, -1.0], [0.72, -0.68], [-0.95, -0.05]])
TIGHT = {"solver": "rk45", "rtol": 1e-7, "atol": 1e-7, "eps": 1e-5}
NPY = {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}
QUERY = {"solver": "rk45", "rtol": "1e-7", "atol": "1e-7", "eps": "1e-5"}


def test_encode_then_decode_round_trips_json(api):
    enc = api.post(f"/v1/models/{G2}/encode", json={"data": X.tolist(), **TIGHT}, expect=200)
    z = np.array(enc.doc["latents"])
    assert z.shape == X.shape and enc.doc["nfe"] > 0
    assert np.abs(z - X).max() > 0.1                # a latent is not the data
    dec = api.post(f"/v1/models/{G2}/decode",
                   json={"latents": z.tolist(), **TIGHT, "denoise": False}, expect=200)
    x = np.array(dec.doc["samples"])
    assert x.shape == X.shape
    assert np.abs(x - X).max() < 1e-3


def test_encode_then_decode_round_trips_npy(api):
    enc = api.post(f"/v1/models/{G2}/encode", data=npy_bytes(X.astype(np.float32)),
                   headers=NPY, params=QUERY, expect=200)
    assert enc.headers["Content-Type"].startswith("application/x-npy")
    z = npy_load(enc.content)
    assert z.dtype == np.float32 and z.shape == X.shape
    dec = api.post(f"/v1/models/{G2}/decode", data=npy_bytes(z), headers=NPY,
                   params={**QUERY, "denoise": "false"}, expect=200)
    assert dec.headers["Content-Type"].startswith("application/x-npy")
    x = npy_load(dec.content)
    assert x.dtype == np.float32 and x.shape == X.shape
    assert np.abs(x - X).max() < 1e-3


def test_npy_and_json_latents_agree(api):
    js = api.post(f"/v1/models/{G2}/encode", json={"data": X.astype(np.float32).tolist(), **TIGHT},
                  expect=200)
    npy = api.post(f"/v1/models/{G2}/encode", data=npy_bytes(X.astype(np.float32)), headers=NPY,
                   params=QUERY, expect=200)
    assert np.allclose(npy_load(npy.content), np.array(js.doc["latents"]), rtol=0, atol=1e-6)


def test_encode_npy_body_with_json_answer_and_float64_input(api):
    r = api.post(f"/v1/models/{G2}/encode", data=npy_bytes(X[:1].astype(np.float64)),
                 headers={"Content-Type": "application/x-npy"}, expect=200)
    assert r.headers["Content-Type"].startswith("application/json")
    assert np.array(r.doc["latents"]).shape == (1, 2)


def test_encode_single_item_gets_an_n_axis(api):
    r = api.post(f"/v1/models/{G2}/encode", json={"data": [0.9, 0.1]}, expect=200)
    assert np.array(r.doc["latents"]).shape == (1, 2)


def test_encode_fixed_step_solver(api):
    r = api.post(f"/v1/models/{G2}/encode",
                 json={"data": X.tolist(), "solver": "heun", "steps": 200}, expect=200)
    assert r.doc["nfe"] == pytest.approx(400, rel=0.05)      # two evaluations a Heun step


def test_encode_png_and_decode_to_png_on_an_image_model(api, fmnist_png):
    enc = api.post(f"/v1/models/{FM}/encode", json={"images": [b64(fmnist_png)]}, expect=200)
    z = np.array(enc.doc["latents"])
    assert z.shape == (1, 1, 28, 28)
    dec = api.post(f"/v1/models/{FM}/decode", json={"latents": z.tolist()}, expect=200)
    assert dec.headers["Content-Type"] == "image/png"
    assert png_info(dec.content)[:2] == (28, 28)
    two = np.concatenate([z, -z])
    dec = api.post(f"/v1/models/{FM}/decode", json={"latents": two.tolist(), "format": "json"},
                   expect=200)
    assert [im["index"] for im in dec.doc["images"]] == [0, 1]
    assert png_decode(unb64(dec.doc["images"][1]["png_base64"])).shape == (28, 28, 1)
    grid = api.post(f"/v1/models/{FM}/decode", json={"latents": two.tolist()}, expect=200)
    assert png_info(grid.content)[:2] == (62, 32)


def test_decode_npy_answer_for_an_image_model(api):
    z = np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32)
    r = api.post(f"/v1/models/{FM}/decode", data=npy_bytes(z), headers=NPY, expect=200)
    x = npy_load(r.content)
    assert x.shape == (2, 1, 28, 28) and np.isfinite(x).all()


def test_decode_latents_of_the_wrong_shape_is_422(api):
    assert_error(api.post(f"/v1/models/{G2}/decode", json={"latents": [[1.0, 2.0, 3.0]]}), 422,
                 "shape_mismatch")
    z = np.zeros((2, 3), dtype=np.float32)
    assert_error(api.post(f"/v1/models/{G2}/decode", data=npy_bytes(z), headers=NPY), 422,
                 "shape_mismatch")


def test_encode_corrupt_npy_is_400(api):
    r = api.post(f"/v1/models/{G2}/encode", data=b"\x93NUMPY\x01\x00garbage",
                 headers={"Content-Type": "application/x-npy"})
    assert_error(r, 400, "malformed_input")


def test_encode_integer_npy_is_422_or_400(api):
    r = api.post(f"/v1/models/{G2}/encode", data=npy_bytes(np.zeros((1, 2), dtype=np.int64)),
                 headers={"Content-Type": "application/x-npy"})
    assert r.status_code in (400, 422)


def test_encode_bad_query_option_is_422(api):
    r = api.post(f"/v1/models/{G2}/encode", data=npy_bytes(X.astype(np.float32)),
                 headers={"Content-Type": "application/x-npy"}, params={"solver": "rk4"})
    assert_error(r, 422, "invalid_argument")


def test_encode_png_body_is_415(api, fmnist_png):
    r = api.post(f"/v1/models/{FM}/encode", data=fmnist_png, headers={"Content-Type": "image/png"})
    assert_error(r, 415, "unsupported_media_type")
