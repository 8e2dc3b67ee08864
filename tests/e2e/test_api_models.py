"""Health, readiness, the model list and the static files of `scored serve`."""

import json
import math

import pytest

from e2e_util import FM, G2, G2VE, REPO, assert_error, raw_http

pytestmark = pytest.mark.server

BUNDLED = {FM, G2, G2VE}


def test_healthz_ok(api):
    r = api.get("/healthz", expect=200)
    assert r.doc == {"status": "ok"}


def safetensors_kind(path):
    """The "kind" in a scored .safetensors file's metadata (network or classifier)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return json.loads(header["__metadata__"]["scored"])["kind"]


def shipped_model_files():
    """The model files of models/: the analytic ones and any trained networks (a guidance
    classifier is not a model of its own: it is loaded with the network that names it)."""
    d = REPO / "models"
    return sorted(p.name for p in d.iterdir()
                  if not p.name.startswith(".") and (p.suffix == ".json" or (
                      p.suffix == ".safetensors" and safetensors_kind(p) != "classifier")))


def test_readyz_counts_the_models(api):
    r = api.get("/readyz", expect=200)
    assert r.doc == {"status": "ready", "models": len(shipped_model_files())}


def test_models_list_has_the_bundled_models_sorted_by_id(api):
    r = api.get("/v1/models", expect=200)
    ids = [m["id"] for m in r.doc["models"]]
    assert ids == sorted(ids)
    assert BUNDLED <= set(ids)
    # anything else shipped is a trained network, listed under its file name
    extra = [m for m in r.doc["models"] if m["id"] not in BUNDLED]
    assert all(m["kind"] == "network" for m in extra)
    assert len(ids) == len(shipped_model_files())


def test_model_info_describes_each_model(api):
    models = {m["id"]: m for m in api.get("/v1/models", expect=200).doc["models"]}
    for mid, m in models.items():
        if mid not in BUNDLED:      # a trained network: its own checks below
            assert m["kind"] == "network" and m["image"] is True
            continue
        f = json.loads((REPO / "models" / f"{mid}.json").read_text())
        assert m["name"] == f["name"]
        assert m["kind"] == "gmm"
        assert m["shape"] == f["shape"]
        assert m["data_dim"] == math.prod(f["shape"])
        assert m["centered"] is True
        assert m["labels"] == f["labels"]
        assert m["guidable"] is True
        assert m["card"] == f["card"]          # the model file's card, untouched
        assert {k: m["sde"][k] for k in f["sde"]} == f["sde"]
        assert {"samples", "likelihood", "anomaly", "encode", "decode", "inpaint"} <= set(m["tasks"])
        assert "colorize" not in m["tasks"]    # none of them has 3 channels
        ds = m["default_sampler"]              # engine defaults, then the card's default_sampler
        assert (ds["kind"], ds["predictor"], ds["corrector"], ds["steps"]) == (
            "pc", "reverse_diffusion", "none", 500)
    assert models[FM]["image"] is True and models[FM]["shape"] == [1, 28, 28]
    assert models[G2]["image"] is False and models[G2]["data_dim"] == 2
    assert models[G2VE]["sde"]["type"] == "ve" and models[G2VE]["sde"]["sigma_max"] == 3
    assert models[G2]["default_sampler"]["eps"] == pytest.approx(1 / 500)   # VP PC: max(1e-3, 1/N)
    assert models[G2VE]["default_sampler"]["eps"] == pytest.approx(1e-5)   # VE default
    assert len(models[FM]["labels"]) == 10 and models[FM]["labels"][7] == "Sneaker"


def test_model_get_equals_its_list_entry(api):
    listed = {m["id"]: m for m in api.get("/v1/models", expect=200).doc["models"]}
    for mid in BUNDLED:
        assert api.get(f"/v1/models/{mid}", expect=200).doc == listed[mid]


def test_model_unknown_is_404(api):
    assert_error(api.get("/v1/models/no-such-model"), 404, "not_found")
    assert_error(api.post("/v1/models/no-such-model/samples", json={"n": 1}), 404, "not_found")


def test_aux_models_dir_adds_a_colour_model_and_a_subvp_model(aux_api):
    models = {m["id"]: m for m in aux_api.get("/v1/models", expect=200).doc["models"]}
    assert set(models) == BUNDLED | {"rgb-gmm", "gmm-2d-subvp", "fmnist-gmm-anomaly"}
    rgb = models["rgb-gmm"]
    assert rgb["image"] is True and rgb["shape"] == [3, 8, 8] and "colorize" in rgb["tasks"]
    sub = models["gmm-2d-subvp"]
    assert sub["sde"]["type"] == "subvp"
    assert sub["default_sampler"]["corrector"] == "none"
    assert aux_api.get("/readyz", expect=200).doc["models"] == 6


def test_static_index_and_files(aux_api, aux_static):
    r = aux_api.get("/", expect=200)
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.content == (aux_static / "index.html").read_bytes()
    r = aux_api.get("/index.html", expect=200)
    assert r.content == (aux_static / "index.html").read_bytes()
    r = aux_api.get("/app.js", expect=200)
    assert "javascript" in r.headers["Content-Type"]
    assert r.content == (aux_static / "app.js").read_bytes()
    assert_error(aux_api.get("/missing.js"), 404, "not_found")
    assert_error(aux_api.get("/.secret"), 404, "not_found")


@pytest.mark.parametrize("target", ["/../README.md", "/%2e%2e/README.md", "/..%2fREADME.md",
                                    "/%2e%2e%2fMakefile", "/static/../../Makefile"])
def test_static_never_leaves_its_directory(aux_server, contract, target):
    status, headers, body = raw_http(
        aux_server.port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status in (400, 404), f"{target}: {status}"
    contract.check("GET", "/nope/x/y", status, headers, body)   # a JSON error
    assert b"PHONY" not in body and b"# scored" not in body      # not the Makefile or README
