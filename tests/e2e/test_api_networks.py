"""Every endpoint works unchanged with neural score networks: a server on the golden
networks of tests/data/golden (random small NCSN++ / DDPM++ / DDPM models) answers samples,
inpaint, colorize, likelihood, anomaly, encode and decode, each response checked against the
contract."""
import numpy as np
import pytest

from e2e_util import Api, b64, png_decode, png_encode, png_info

pytestmark = pytest.mark.server

NET = "ddpmpp_vp_positional"      # 3x16x16, VP continuous
FAST_PC = {"kind": "pc", "predictor": "reverse_diffusion", "corrector": "none", "steps": 30}


@pytest.fixture(scope="module")
def net_api(request, workdir, contract):
    from e2e_util import Server
    srv = Server("networks", workdir, models="tests/data/golden")
    srv.start()
    yield Api(srv.url, contract)
    srv.stop()


def test_models_lists_the_networks(net_api):
    ids = [m["id"] for m in net_api.get("/v1/models", expect=200).doc["models"]]
    assert NET in ids and not any("classifier" in i for i in ids)
    info = net_api.get(f"/v1/models/{NET}", expect=200).doc
    assert info["kind"] == "network" and info["shape"] == [3, 16, 16] and "colorize" in info["tasks"]


def test_samples_png_and_json(net_api):
    r = net_api.post(f"/v1/models/{NET}/samples", json={"n": 4, "seed": 1, "sampler": FAST_PC}, expect=200)
    assert png_info(r.content)[:2] == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)
    r = net_api.post(f"/v1/models/{NET}/samples",
                     json={"n": 2, "seed": 1, "format": "json", "sampler": {"kind": "ode", "solver": "heun", "steps": 8}},
                     expect=200)
    assert len(r.doc["images"]) == 2


def test_inpaint_and_colorize(net_api):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[:, :8] = 255
    r = net_api.post(f"/v1/models/{NET}/inpaint",
                     json={"image": b64(png_encode(img)), "mask": b64(png_encode(mask)), "seed": 3,
                           "sampler": FAST_PC}, expect=200)
    out = png_decode(r.content)
    assert (out[:, :8] == img[:, :8]).all()
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    r = net_api.post(f"/v1/models/{NET}/colorize",
                     json={"image": b64(png_encode(gray)), "seed": 3, "sampler": FAST_PC}, expect=200)
    assert png_info(r.content)[:2] == (16, 16)


def test_likelihood_anomaly_encode_decode(net_api):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    body = {"images": [b64(png_encode(img))], "rtol": 1e-3, "atol": 1e-3}
    r = net_api.post(f"/v1/models/{NET}/likelihood", json=body, expect=200)
    assert np.isfinite(r.doc["results"][0]["bits_per_dim"])
    r = net_api.post(f"/v1/models/{NET}/anomaly", json={**body, "threshold": 1e9}, expect=200)
    assert r.doc["results"][0]["is_anomaly"] is False
    data = rng.uniform(-0.5, 0.5, (1, 3, 16, 16)).tolist()
    r = net_api.post(f"/v1/models/{NET}/encode", json={"data": data, "rtol": 1e-3, "atol": 1e-3}, expect=200)
    z = r.doc["latents"]
    assert np.isfinite(np.array(z)).all()
    r = net_api.post(f"/v1/models/{NET}/decode",
                     json={"latents": z, "format": "json", "solver": "heun", "steps": 8}, expect=200)
    assert len(r.doc["images"]) == 1
