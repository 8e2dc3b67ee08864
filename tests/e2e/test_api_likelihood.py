"""POST /v1/models/{id}/likelihood and /anomaly: PNG (multipart and base64) and float inputs,
exact against Hutchinson divergence, agreement with the command line and the exact mixture
density, and the anomaly thresholds (request, card, quantile)."""

import json
import math
import subprocess

import numpy as np
import pytest

from e2e_util import (ANOMALY_CARD, BIN, FM, G2, REPO, assert_error, b64, npy_bytes, png_encode)

pytestmark = pytest.mark.server

LIK = f"/v1/models/{FM}/likelihood"
POINTS = [[1.0, 0.0], [0.7, 0.7], [0.0, -1.0], [0.3, 0.2]]


def exact_log_density(points):
    m = json.loads((REPO / "models" / "gmm-2d.json").read_text())
    w, mu = np.array(m["weights"]), np.array(m["means"])
    sd = np.array(m["stds"]).reshape(len(w), -1)[:, 0]
    out = []
    for p in np.asarray(points):
        terms = (np.log(w) - np.log(2 * np.pi * sd ** 2)
                 - ((p - mu) ** 2).sum(axis=1) / (2 * sd ** 2))
        out.append(np.logaddexp.reduce(terms))
    return np.array(out)


def cli_likelihood(model, inp, *args):
    """The CLI's JSON lines for the same input."""
    r = subprocess.run([str(BIN), "likelihood", "--model", model, "--input", str(inp),
                        *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_likelihood_png_multipart_reports_bits_per_dim(api, workdir, fmnist_png):
    r = api.post(LIK, files={"image": ("x.png", fmnist_png, "image/png"),
                             "params": (None, json.dumps({"seed": 0}), "application/json")},
                 expect=200)
    (res,) = r.doc["results"]
    assert res["index"] == 0 and "bits_per_dim" in res and "log_likelihood_se" not in res
    # bits/dim of 8-bit data in [-1, 1] units (the reference code's offset 7): -L / (D ln 2) + 7
    assert res["bits_per_dim"] == pytest.approx(
        -res["log_likelihood_nats"] / (784 * math.log(2)) + 7, rel=1e-6)
    (workdir / "lik.png").write_bytes(fmnist_png)
    (ref,) = cli_likelihood(FM, workdir / "lik.png", "--seed", 0)
    assert res["log_likelihood_nats"] == pytest.approx(ref["log_likelihood_nats"], rel=1e-8, abs=1e-6)
    assert res["bits_per_dim"] == pytest.approx(ref["bits_per_dim"], rel=1e-7)
    assert res["nfe"] == ref["nfe"]


def test_likelihood_seed_defaults_to_zero(api, fmnist_png):
    a = api.post(LIK, files={"image": ("x.png", fmnist_png, "image/png")}, expect=200)
    b = api.post(LIK, json={"images": [b64(fmnist_png)], "seed": 0}, expect=200)
    assert a.doc["results"] == b.doc["results"]


def test_likelihood_base64_json_several_images(api, fmnist_png):
    other = png_encode(np.full((28, 28), 30, dtype=np.uint8))
    r = api.post(LIK, json={"images": [b64(fmnist_png), b64(other)], "seed": 9}, expect=200)
    res = r.doc["results"]
    assert [x["index"] for x in res] == [0, 1]
    assert all("bits_per_dim" in x for x in res)
    alone = api.post(LIK, files={"image": ("x.png", fmnist_png, "image/png"),
                                 "params": (None, '{"seed": 9}', "application/json")},
                     expect=200)
    assert res[0] == alone.doc["results"][0]       # item 0 uses the stream (seed, 0) either way
    assert res[1]["bits_per_dim"] > res[0]["bits_per_dim"]   # a flat image is unlikely


def test_likelihood_multipart_several_image_parts(api, fmnist_png):
    other = png_encode(np.full((28, 28), 30, dtype=np.uint8))
    files = [("image", ("a.png", fmnist_png, "image/png")),
             ("image", ("b.png", other, "image/png"))]
    r = api.post(LIK, files=files, expect=200)
    assert len(r.doc["results"]) == 2


def test_likelihood_float_data_in_nats_without_bits_per_dim(api):
    r = api.post(f"/v1/models/{G2}/likelihood",
                 json={"data": POINTS, "exact_divergence": True, "rtol": 1e-7, "atol": 1e-7},
                 expect=200)
    res = r.doc["results"]
    assert [x["index"] for x in res] == [0, 1, 2, 3]
    assert all("bits_per_dim" not in x and "log_likelihood_se" not in x for x in res)
    got = np.array([x["log_likelihood_nats"] for x in res])
    assert np.allclose(got, exact_log_density(POINTS), atol=0.01)


def test_likelihood_exact_divergence_matches_cli(api, workdir):
    pts = workdir / "points.npy"
    pts.write_bytes(npy_bytes(np.array(POINTS, dtype=np.float32)))
    ref = cli_likelihood(G2, pts, "--exact-div")
    r = api.post(f"/v1/models/{G2}/likelihood",
                 json={"data": np.array(POINTS, dtype=np.float32).tolist(),
                       "exact_divergence": True}, expect=200)
    for a, b in zip(r.doc["results"], ref):
        assert a["log_likelihood_nats"] == pytest.approx(b["log_likelihood_nats"], rel=1e-7)
        assert a["nfe"] == b["nfe"]


def test_likelihood_exact_divergence_agrees_with_16_probes(api):
    path = f"/v1/models/{G2}/likelihood"
    exact = api.post(path, json={"data": POINTS, "exact_divergence": True}, expect=200)
    probes = api.post(path, json={"data": POINTS, "probes": 16, "seed": 1}, expect=200)
    for e, p in zip(exact.doc["results"], probes.doc["results"]):
        assert p["log_likelihood_se"] > 0
        assert abs(e["log_likelihood_nats"] - p["log_likelihood_nats"]) <= \
            3 * p["log_likelihood_se"] + 1e-3, (e, p)


def test_likelihood_default_divergence_is_exact_for_small_d(api):
    # none of exact_divergence, hutchinson, probes: exact for D <= 16 (gmm-2d: D = 2)
    path = f"/v1/models/{G2}/likelihood"

    def nats(body):
        return [x["log_likelihood_nats"] for x in api.post(path, json=body, expect=200).doc["results"]]

    default = nats({"data": POINTS})
    assert default == nats({"data": POINTS, "exact_divergence": True})
    assert np.allclose(default, exact_log_density(POINTS), atol=0.05)
    # asking for probes (or a probe kind, or exact_divergence false) keeps Hutchinson
    one_probe = nats({"data": POINTS, "probes": 1})
    assert one_probe != default
    assert nats({"data": POINTS, "hutchinson": "rademacher"}) == one_probe
    assert nats({"data": POINTS, "exact_divergence": False}) == one_probe


def test_likelihood_default_divergence_is_one_probe_for_images(api, fmnist_png):
    # D = 784 > 16: one rademacher probe by default
    img = [b64(fmnist_png)]
    default = api.post(LIK, json={"images": img}, expect=200).doc["results"]
    probe = api.post(LIK, json={"images": img, "probes": 1, "hutchinson": "rademacher"},
                     expect=200).doc["results"]
    assert default[0]["log_likelihood_nats"] == probe[0]["log_likelihood_nats"]


def test_likelihood_gaussian_probes(api):
    r = api.post(f"/v1/models/{G2}/likelihood",
                 json={"data": POINTS[:2], "probes": 4, "hutchinson": "gaussian"}, expect=200)
    assert all(x["log_likelihood_se"] >= 0 for x in r.doc["results"])


def test_likelihood_single_item_of_the_model_shape(api):
    r = api.post(f"/v1/models/{G2}/likelihood", json={"data": [1.0, 0.0]}, expect=200)
    assert len(r.doc["results"]) == 1


def test_likelihood_fixed_step_solvers(api):
    for solver in ("euler", "heun"):
        r = api.post(f"/v1/models/{G2}/likelihood",
                     json={"data": POINTS[:1], "solver": solver, "steps": 100,
                           "exact_divergence": True}, expect=200)
        assert abs(r.doc["results"][0]["log_likelihood_nats"] - exact_log_density(POINTS[:1])[0]) < 0.2


def test_likelihood_data_of_the_wrong_shape_is_422(api):
    r = api.post(f"/v1/models/{G2}/likelihood", json={"data": [[1.0, 2.0, 3.0]]})
    assert_error(r, 422, "shape_mismatch")


def test_likelihood_more_than_64_images_is_413(api):
    tiny = b64(png_encode(np.zeros((28, 28), dtype=np.uint8)))
    assert_error(api.post(LIK, json={"images": [tiny] * 65}), 413, "too_large")


# ---- anomaly --------------------------------------------------------------------------------------

def test_anomaly_with_an_explicit_threshold(api, fmnist_png):
    other = png_encode(np.full((28, 28), 30, dtype=np.uint8))
    lik = api.post(LIK, json={"images": [b64(fmnist_png), b64(other)], "seed": 3},
                   expect=200).doc["results"]
    thr = round((lik[0]["bits_per_dim"] + lik[1]["bits_per_dim"]) / 2, 3)
    r = api.post(f"/v1/models/{FM}/anomaly",
                 json={"images": [b64(fmnist_png), b64(other)], "threshold": thr, "seed": 3},
                 expect=200)
    doc = r.doc
    assert doc["score_kind"] == "bpd" and doc["threshold_source"] == "request"
    for res, ref in zip(doc["results"], lik):
        assert res["threshold"] == thr
        assert res["score"] == pytest.approx(ref["bits_per_dim"], rel=1e-8)
        assert res["log_likelihood_nats"] == ref["log_likelihood_nats"]
        assert res["is_anomaly"] == (res["score"] > res["threshold"])
    assert [x["is_anomaly"] for x in doc["results"]] == [False, True]


def test_anomaly_without_a_threshold_when_the_card_has_none_is_422(api):
    assert "anomaly" not in api.get(f"/v1/models/{G2}", expect=200).doc["card"]
    r = api.post(f"/v1/models/{G2}/anomaly", json={"data": POINTS})
    assert_error(r, 422, "invalid_argument")
    r = api.post(f"/v1/models/{G2}/anomaly", json={"data": POINTS, "quantile": 0.95})
    assert_error(r, 422, "invalid_argument")


def test_anomaly_threshold_from_the_bundled_card(api, fmnist_png):
    card = json.loads((REPO / "models" / "fmnist-gmm.json").read_text())["card"]
    if "anomaly" not in card:
        pytest.skip("models/fmnist-gmm.json has no anomaly section")
    r = api.post(f"/v1/models/{FM}/anomaly", json={"images": [b64(fmnist_png)]}, expect=200)
    assert r.doc["threshold_source"] == "card"
    assert r.doc["score_kind"] == card["anomaly"].get("score", "bpd")
    (res,) = r.doc["results"]
    assert res["threshold"] == pytest.approx(card["anomaly"]["threshold"], rel=1e-9)
    assert res["is_anomaly"] == (res["score"] > res["threshold"])


def test_anomaly_threshold_from_the_card(aux_api, fmnist_png):
    r = aux_api.post("/v1/models/fmnist-gmm-anomaly/anomaly",
                     files={"image": ("x.png", fmnist_png, "image/png")}, expect=200)
    doc = r.doc
    assert doc["threshold_source"] == "card" and doc["score_kind"] == "bpd"
    (res,) = doc["results"]
    assert res["threshold"] == ANOMALY_CARD["threshold"]
    assert res["is_anomaly"] == (res["score"] > res["threshold"])


@pytest.mark.parametrize("q", ["0.9", "0.95", "0.99"])
def test_anomaly_threshold_from_a_quantile(aux_api, fmnist_png, q):
    r = aux_api.post("/v1/models/fmnist-gmm-anomaly/anomaly",
                     files={"image": ("x.png", fmnist_png, "image/png"),
                            "params": (None, json.dumps({"quantile": float(q)}),
                                       "application/json")}, expect=200)
    assert r.doc["threshold_source"] == "quantile"
    (res,) = r.doc["results"]
    assert res["threshold"] == ANOMALY_CARD["quantiles"][q]
    assert res["is_anomaly"] == (res["score"] > res["threshold"])


def test_anomaly_each_score_takes_its_own_calibration(aux_api, api, fmnist_png):
    """A card calibrates each score separately: the complexity score's threshold and quantiles
    come from anomaly.scores.complexity, never from the bpd ones; a card without a
    calibration for the requested score is a 422 that says to send a threshold."""
    url = "/v1/models/fmnist-gmm-anomaly/anomaly"
    cal = ANOMALY_CARD["scores"]["complexity"]
    r = aux_api.post(url, json={"images": [b64(fmnist_png)], "score": "complexity"}, expect=200)
    (res,) = r.doc["results"]
    assert r.doc["score_kind"] == "complexity" and r.doc["threshold_source"] == "card"
    assert res["threshold"] == cal["threshold"]
    assert res["is_anomaly"] == (res["score"] > res["threshold"])
    r = aux_api.post(url, json={"images": [b64(fmnist_png)], "score": "complexity",
                                "quantile": 0.9}, expect=200)
    assert r.doc["results"][0]["threshold"] == cal["quantiles"]["0.9"]
    r = aux_api.post(url, json={"images": [b64(fmnist_png)], "score": "complexity",
                                "quantile": 0.99})
    assert_error(r, 422, "invalid_argument")
    assert "complexity" in r.doc["error"]["message"]
    # the bundled fmnist-gmm calibrates bits/dim only
    r = api.post(f"/v1/models/{FM}/anomaly", json={"images": [b64(fmnist_png)], "score": "complexity"})
    assert_error(r, 422, "invalid_argument")
    assert "threshold" in r.doc["error"]["message"]


def test_anomaly_quantile_missing_from_the_card_is_422(aux_api, fmnist_png):
    r = aux_api.post("/v1/models/fmnist-gmm-anomaly/anomaly",
                     json={"images": [b64(fmnist_png)], "quantile": 0.5})
    assert_error(r, 422, "invalid_argument")


def test_anomaly_threshold_and_quantile_together_is_422(aux_api, fmnist_png):
    r = aux_api.post("/v1/models/fmnist-gmm-anomaly/anomaly",
                     json={"images": [b64(fmnist_png)], "quantile": 0.9, "threshold": 3.0})
    assert_error(r, 422, "invalid_argument")


def test_anomaly_on_float_data_scores_bits_per_dim(api):
    r = api.post(f"/v1/models/{G2}/anomaly",
                 json={"data": POINTS, "threshold": 2.0, "exact_divergence": True}, expect=200)
    for res in r.doc["results"]:
        assert res["score"] == pytest.approx(-res["log_likelihood_nats"] / (2 * math.log(2)),
                                             rel=1e-7)
        assert res["is_anomaly"] == (res["score"] > 2.0)
    assert r.doc["results"][3]["is_anomaly"] is True       # (0.3, 0.2) is far from the modes


def test_anomaly_complexity_score_needs_png_inputs(api, fmnist_png):
    r = api.post(f"/v1/models/{FM}/anomaly",
                 json={"images": [b64(fmnist_png)], "score": "complexity", "threshold": 0.0},
                 expect=200)
    assert r.doc["score_kind"] == "complexity"
    (res,) = r.doc["results"]
    assert res["score"] < res["bits_per_dim"]            # bpd minus the PNG's own bits/dim
    r = api.post(f"/v1/models/{G2}/anomaly",
                 json={"data": POINTS, "score": "complexity", "threshold": 0.0})
    assert_error(r, 422, "invalid_argument")
