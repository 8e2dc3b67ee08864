"""The contract itself, proto/openapi.yaml, without a server: the document loads, every $ref
resolves, every schema is valid JSON Schema 2020-12, every operation is well formed, hand-written
valid and invalid payloads of each main schema are accepted and refused, and the test helpers
(path matching, response checking, PNG, metrics and SSE parsing) work."""

import copy
import json
import subprocess

import jsonschema
import numpy as np
import pytest

from e2e_util import (BIN, REPO, Contract, ContractError, b64, grid_size, iter_sse, parse_metrics,
                      png_decode, png_encode, png_info)

C = Contract()
DOC = C.doc
SCHEMAS = DOC["components"]["schemas"]

PNG_B64 = b64(png_encode(np.zeros((2, 2), dtype=np.uint8)))


def walk(node, path=()):
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


def inline_schemas():
    """Every schema object of the document: components and the inline ones of parameters,
    headers and media types."""
    for name, s in SCHEMAS.items():
        yield f"components/schemas/{name}", s
    for path, node in walk(DOC):
        if path[:2] == ("components", "schemas"):
            continue
        if isinstance(node, dict) and "schema" in node and isinstance(node["schema"], dict):
            yield "/".join(map(str, path)), node["schema"]


# ---- the document ---------------------------------------------------------------------------------

def test_document_is_openapi_3_1():
    assert DOC["openapi"] == "3.1.0"
    assert DOC["jsonSchemaDialect"] == "https://json-schema.org/draft/2020-12/schema"
    assert DOC["info"]["title"] and DOC["info"]["version"]
    assert set(DOC["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}


EXPECTED_OPERATIONS = {
    ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"), ("get", "/"), ("get", "/{file}"),
    ("get", "/v1/models"), ("get", "/v1/models/{model_id}"),
    ("post", "/v1/models/{model_id}/samples"), ("post", "/v1/models/{model_id}/inpaint"),
    ("post", "/v1/models/{model_id}/colorize"), ("post", "/v1/models/{model_id}/likelihood"),
    ("post", "/v1/models/{model_id}/anomaly"), ("post", "/v1/models/{model_id}/encode"),
    ("post", "/v1/models/{model_id}/decode"),
    ("get", "/v1/jobs/{job_id}"), ("delete", "/v1/jobs/{job_id}"),
    ("get", "/v1/jobs/{job_id}/events"),
}


def test_every_endpoint_of_the_design_is_declared():
    ops = {(m, p) for p, item in DOC["paths"].items() for m in item if m in Contract.METHODS}
    assert ops == EXPECTED_OPERATIONS


def test_every_ref_resolves():
    refs = [(path, node["$ref"]) for path, node in walk(DOC)
            if isinstance(node, dict) and isinstance(node.get("$ref"), str)]
    assert len(refs) > 100
    for path, ref in refs:
        assert ref.startswith("#/"), f"{'/'.join(map(str, path))}: non-local $ref {ref}"
        try:
            C.resolver.resolve(ref)
        except jsonschema.RefResolutionError as e:
            pytest.fail(f"{'/'.join(map(str, path))}: $ref {ref} does not resolve: {e}")


def test_every_schema_is_valid_json_schema_2020_12():
    n = 0
    for where, schema in inline_schemas():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            pytest.fail(f"{where}: {e.message}")
        n += 1
    assert n > 60


def test_operations_are_well_formed():
    ids = set()
    error_codes = set(SCHEMAS["ErrorCode"]["enum"])
    for template, item in DOC["paths"].items():
        for method, op in item.items():
            if method not in Contract.METHODS:
                continue
            where = f"{method.upper()} {template}"
            assert op.get("operationId") and op["operationId"] not in ids, where
            ids.add(op["operationId"])
            params = [C.deref(p) for p in item.get("parameters", []) + op.get("parameters", [])]
            names = {p["name"] for p in params if p["in"] == "path"}
            wanted = {seg[1:-1] for seg in template.split("/") if seg.startswith("{")}
            assert names == wanted, f"{where}: path parameters {names} != {wanted}"
            for p in params:
                if p["in"] == "path":
                    assert p.get("required") is True, where
            responses = op["responses"]
            assert "default" in responses, where
            assert any(k.startswith("2") for k in responses), where
            for status, resp in responses.items():
                resp = C.deref(resp)
                assert resp.get("description"), f"{where} {status}"
                if status.startswith(("4", "5")) or status == "default":
                    # every error response is an Error: some code passes, other shapes fail
                    schema = resp["content"]["application/json"]["schema"]
                    assert any(C.is_valid(schema, {"error": {"code": c, "message": "m"}})
                               for c in error_codes), f"{where} {status}"
                    assert not C.is_valid(schema, {"message": "m"}), f"{where} {status}"
            if method == "post":
                for status in ("200", "202", "400", "401", "404", "409", "413", "415", "422",
                               "429", "503"):
                    assert status in responses, f"{where}: no {status} response"
                assert op["requestBody"]["required"] is True, where


def test_examples_in_the_document_match_their_schemas():
    n = 0
    for path, node in walk(DOC):
        if not isinstance(node, dict) or "schema" not in node or "example" not in node:
            continue
        media_type = path[-1] if path else ""
        if media_type == "application/json" or (path and "parameters" in path):
            C.validate(node["schema"], node["example"], "/".join(map(str, path)) + " example")
            n += 1
    for name, s in SCHEMAS.items():
        if "example" in s:
            C.validate({"$ref": f"#/components/schemas/{name}"}, s["example"], name)
            n += 1
    assert n >= 6


def test_error_statuses_pin_their_codes():
    for status, codes in {"400": ["malformed_input"], "401": ["unauthorized"],
                          "404": ["not_found"], "405": ["method_not_allowed"],
                          "409": ["cancelled"], "413": ["too_large"],
                          "415": ["unsupported_media_type"],
                          "422": ["invalid_argument", "unsupported_combination", "shape_mismatch"],
                          "429": ["queue_full"], "500": ["internal_error"],
                          "503": ["not_ready", "shutting_down"]}.items():
        schema = C.deref(DOC["paths"]["/v1/models/{model_id}/samples"]["post"]["responses"][status])
        schema = schema["content"]["application/json"]["schema"]
        for code in SCHEMAS["ErrorCode"]["enum"]:
            ok = C.is_valid(schema, {"error": {"code": code, "message": "why"}})
            assert ok == (code in codes), f"{status} {code}"


# ---- payloads: one valid and some invalid per main schema ------------------------------------------

SAMPLER_PC = {"kind": "pc", "predictor": "reverse_diffusion", "corrector": "langevin", "snr": 0.16,
              "corrector_steps": 1, "steps": 500, "solver": "rk45", "rtol": 1e-5, "atol": 1e-5,
              "eps": 1e-3, "denoise": True}

MODEL = {"id": "fmnist-gmm", "name": "fmnist-gmm", "kind": "gmm", "shape": [1, 28, 28],
         "data_dim": 784, "image": True, "centered": True,
         "sde": {"type": "vp", "beta_min": 0.1, "beta_max": 20, "N": 1000},
         "labels": ["T-shirt/top", "Trouser"], "guidable": True,
         "tasks": ["samples", "likelihood", "anomaly", "encode", "decode", "inpaint"],
         "default_sampler": SAMPLER_PC, "card": {"description": "d", "anything": [1, {"x": None}]}}


def without(d, key):
    d = copy.deepcopy(d)
    del d[key]
    return d


def with_(d, **kw):
    d = copy.deepcopy(d)
    d.update(kw)
    return d


JOB_QUEUED = {"id": "j1", "model": "fmnist-gmm", "kind": "samples", "status": "queued",
              "progress": {"step": 0, "steps": 50, "nfe": 0}, "queue_position": 0,
              "created": 1.7e9, "started": None, "finished": None}
JOB_RUNNING = with_(without(JOB_QUEUED, "queue_position"), status="running", started=1.7e9 + 1,
                    progress={"step": 10, "steps": 50, "nfe": 10.0})
IMAGE_RESULT = {"id": "j1", "images": [{"index": 0, "seed": 7, "png_base64": PNG_B64}],
                "nfe": 50.0, "seconds": 0.01}
VECTOR_RESULT = {"id": "j2", "samples": [[0.1, 0.9], [1.0, -0.01]], "seed": 2 ** 53 - 1,
                 "nfe": 500, "seconds": 0.5}
JOB_DONE = with_(JOB_RUNNING, status="done", finished=1.7e9 + 2, result=IMAGE_RESULT,
                 progress={"step": 50, "steps": 50, "nfe": 50.0})
JOB_FAILED = with_(JOB_RUNNING, status="failed", finished=1.7e9 + 2,
                   error={"code": "internal_error", "message": "out of memory"})
JOB_CANCELLED = with_(JOB_QUEUED, status="cancelled", finished=1.7e9 + 2)
del JOB_CANCELLED["queue_position"]
LIKELIHOOD_RESULT = {"results": [{"index": 0, "log_likelihood_nats": -5544.5, "bits_per_dim": 3.2,
                                  "nfe": 302}], "seconds": 0.02}
ANOMALY_RESULT = {"results": [{"index": 0, "log_likelihood_nats": -5544.5, "bits_per_dim": 3.2,
                               "nfe": 302, "score": 3.2, "threshold": 4.0, "is_anomaly": False}],
                  "score_kind": "bpd", "threshold_source": "card", "seconds": 0.02}

CASES = [
    # (schema, instance, valid?, label)
    ("Health", {"status": "ok"}, True, "ok"),
    ("Health", {"status": "fine"}, False, "other status"),
    ("Ready", {"status": "ready", "models": 3}, True, "ready"),
    ("Ready", {"status": "ready"}, False, "no model count"),
    ("Error", {"error": {"code": "not_found", "message": "no model 'x'"}}, True, "error"),
    ("Error", {"error": {"code": "not_found", "message": "a\nb"}}, False, "two lines"),
    ("Error", {"error": {"code": "oops", "message": "x"}}, False, "unknown code"),
    ("Error", {"error": {"code": "not_found", "message": "x"}, "detail": 1}, False, "extra"),
    ("Error", {"error": {"code": "not_found"}}, False, "no message"),
    ("ModelInfo", MODEL, True, "fmnist"),
    ("ModelInfo", with_(MODEL, id="gmm-2d", shape=[2], data_dim=2, image=False, labels=[],
                        guidable=False,
                        sde={"type": "ve", "sigma_min": 0.01, "sigma_max": 3, "N": 1000}),
     True, "vector ve"),
    ("ModelInfo", without(MODEL, "card"), False, "no card"),
    ("ModelInfo", with_(MODEL, extra=1), False, "extra field"),
    ("ModelInfo", with_(MODEL, sde={"type": "ve", "beta_min": 0.1, "beta_max": 20, "N": 1000}),
     False, "ve with betas"),
    ("ModelInfo", with_(MODEL, tasks=["samples", "paint"]), False, "unknown task"),
    ("ModelInfo", with_(MODEL, default_sampler=without(SAMPLER_PC, "steps")), False,
     "incomplete default sampler"),
    ("ModelInfo", with_(MODEL, shape=[1, 28, 28, 1]), False, "rank 4"),
    ("ModelList", {"models": [MODEL]}, True, "list"),
    ("ModelList", [MODEL], False, "bare array"),
    ("Sampler", {}, True, "empty"),
    ("Sampler", {"kind": "ode", "solver": "heun", "steps": 100}, True, "ode heun"),
    ("Sampler", SAMPLER_PC, True, "full pc"),
    ("Sampler", {"predictor": "heun"}, False, "unknown predictor"),
    ("Sampler", {"steps": 0}, False, "steps 0"),
    ("Sampler", {"steps": 100001}, False, "steps over"),
    ("Sampler", {"snr": 0}, False, "snr 0"),
    ("Sampler", {"eps": 0.5}, False, "eps 0.5"),
    ("Sampler", {"rtol": 0}, False, "rtol 0"),
    ("Sampler", {"corrector_steps": 101}, False, "corrector steps"),
    ("Sampler", {"foo": 1}, False, "unknown field"),
    ("SamplesRequest", {}, True, "empty"),
    ("SamplesRequest", {"n": 4, "seed": 7, "sampler": {"kind": "pc", "steps": 50},
                        "label": "Sneaker", "guidance": 2, "format": "png", "grid": True,
                        "async": True, "preview_every": 10}, True, "everything"),
    ("SamplesRequest", {"label": 3}, True, "label index"),
    ("SamplesRequest", {"n": 0}, False, "n 0"),
    ("SamplesRequest", {"n": 65}, False, "n 65"),
    ("SamplesRequest", {"n": "3"}, False, "n string"),
    ("SamplesRequest", {"stpes": 5}, False, "typo"),
    ("SamplesRequest", {"seed": -1}, False, "negative seed"),
    ("SamplesRequest", {"seed": 2 ** 53}, False, "seed 2^53"),
    ("SamplesRequest", {"seed": 2 ** 53 - 1}, True, "seed 2^53-1"),
    ("SamplesRequest", {"label": -1}, False, "label -1"),
    ("SamplesRequest", {"format": "jpeg"}, False, "jpeg"),
    ("SamplesRequest", {"guidance": -1}, False, "negative guidance"),
    ("SamplesResponse", IMAGE_RESULT, True, "images"),
    ("SamplesResponse", VECTOR_RESULT, True, "vectors"),
    ("SamplesResponse", without(IMAGE_RESULT, "id"), False, "no id"),
    ("SamplesResponse", with_(IMAGE_RESULT, samples=[[1.0]]), False, "images and samples"),
    ("SamplesResponse", with_(IMAGE_RESULT, images=[{"index": 0, "seed": 7,
                                                    "png_base64": "R0lGODlh"}]), False, "GIF"),
    ("SamplesResponse", with_(IMAGE_RESULT, images=[]), False, "no images"),
    ("SamplesResponse", with_(VECTOR_RESULT, samples=[[0.1, "x"]]), False, "string sample"),
    ("SamplesResponse", without(VECTOR_RESULT, "seed"), False, "vector without seed"),
    ("InpaintRequest", {"image": PNG_B64, "mask": PNG_B64, "n": 2, "seed": 1}, True, "image+mask"),
    ("InpaintRequest", {"image": "data:image/png;base64," + PNG_B64}, True, "data url"),
    ("InpaintRequest", {"data": [0.5, 0.1], "mask": [1, 0]}, True, "vector"),
    ("InpaintRequest", {"image": PNG_B64, "data": [0.5, 0.1], "mask": [1, 0]}, False, "both"),
    ("InpaintRequest", {"n": 1}, False, "no input"),
    ("InpaintRequest", {"image": "@@not base64@@"}, False, "bad base64"),
    ("ColorizeRequest", {"image": PNG_B64, "seed": 2}, True, "image"),
    ("ColorizeRequest", {"seed": 2}, False, "no image"),
    ("ColorizeRequest", {"image": PNG_B64, "mask": PNG_B64}, False, "mask"),
    ("LikelihoodRequest", {"images": [PNG_B64, PNG_B64], "probes": 4, "seed": 1}, True, "images"),
    ("LikelihoodRequest", {"data": [[1.0, 0.0]], "exact_divergence": True, "solver": "rk45",
                           "rtol": 1e-6, "atol": 1e-6, "eps": 1e-5, "async": False}, True, "data"),
    ("LikelihoodRequest", {"data": [1.0, 0.0], "images": [PNG_B64]}, False, "both"),
    ("LikelihoodRequest", {"data": [1.0, 0.0], "probes": 65}, False, "probes 65"),
    ("LikelihoodRequest", {"data": [1.0, 0.0], "hutchinson": "normal"}, False, "bad probe kind"),
    ("LikelihoodRequest", {"data": [1.0, 0.0], "threshold": 3}, False, "anomaly field"),
    ("LikelihoodRequest", {"images": [PNG_B64] * 65}, False, "65 images"),
    ("LikelihoodRequest", {"data": []}, False, "empty data"),
    ("LikelihoodOptions", {"probes": 2, "seed": 3}, True, "params part"),
    ("LikelihoodOptions", {"probes": 2, "images": [PNG_B64]}, False, "images in params"),
    ("LikelihoodResponse", LIKELIHOOD_RESULT, True, "png result"),
    ("LikelihoodResponse", with_(LIKELIHOOD_RESULT, id="j5"), True, "with id"),
    ("LikelihoodResponse", {"results": [{"index": 0, "log_likelihood_nats": -0.8, "nfe": 80,
                                         "log_likelihood_se": 0.03}], "seconds": 0}, True, "se"),
    ("LikelihoodResponse", {"results": [{"index": 0, "log_likelihood_nats": -0.8}],
                            "seconds": 0}, False, "no nfe"),
    ("LikelihoodResponse", {"results": [{"index": 0, "log_likelihood_nats": -0.8, "nfe": 8,
                                         "score": 1}], "seconds": 0}, False, "anomaly field"),
    ("LikelihoodResponse", without(LIKELIHOOD_RESULT, "seconds"), False, "no seconds"),
    ("AnomalyRequest", {"images": [PNG_B64], "quantile": 0.95, "score": "bpd"}, True, "quantile"),
    ("AnomalyRequest", {"data": [[0.0, 1.0]], "threshold": 2.5}, True, "threshold"),
    ("AnomalyRequest", {"data": [[0.0, 1.0]], "threshold": 2.5, "quantile": 0.9}, False, "both"),
    ("AnomalyRequest", {"data": [[0.0, 1.0]], "quantile": 1}, False, "quantile 1"),
    ("AnomalyRequest", {"data": [[0.0, 1.0]], "score": "energy"}, False, "unknown score"),
    ("AnomalyResponse", ANOMALY_RESULT, True, "anomaly"),
    ("AnomalyResponse", with_(ANOMALY_RESULT, threshold_source="model"), False, "bad source"),
    ("AnomalyResponse", {**ANOMALY_RESULT, "results": [without(ANOMALY_RESULT["results"][0],
                                                               "is_anomaly")]}, False, "no flag"),
    ("EncodeRequest", {"data": [[1.0, 0.0]], "rtol": 1e-7, "atol": 1e-7, "eps": 1e-5}, True, "data"),
    ("EncodeRequest", {"images": [PNG_B64], "solver": "heun", "steps": 100}, True, "images"),
    ("EncodeRequest", {"data": [[1.0, 0.0]], "denoise": False}, False, "denoise on encode"),
    ("EncodeRequest", {"solver": "rk45"}, False, "no input"),
    ("EncodeResponse", {"latents": [[0.3, -1.2]], "nfe": 80}, True, "latents"),
    ("EncodeResponse", {"latents": [[0.3, -1.2]], "nfe": 80, "id": "x", "seconds": 0.1}, True,
     "latents with id"),
    ("EncodeResponse", {"latents": [0.3, -1.2], "nfe": 80}, False, "latents without n axis"),
    ("EncodeResponse", {"latents": [[0.3, -1.2]]}, False, "no nfe"),
    ("DecodeRequest", {"latents": [[0.3, -1.2]], "denoise": False, "rtol": 1e-7}, True, "decode"),
    ("DecodeRequest", {"latents": [[0.3, -1.2]], "format": "json", "grid": False}, True, "json"),
    ("DecodeRequest", {"data": [[0.3, -1.2]]}, False, "data instead of latents"),
    ("DecodeRequest", {"latents": [[0.3, -1.2]], "sampler": {"kind": "ode"}}, False, "sampler"),
    ("DecodeResponse", {"samples": [[0.3, -1.2]], "nfe": 80, "seconds": 0.01}, True, "vectors"),
    ("DecodeResponse", {"images": [{"index": 0, "png_base64": PNG_B64}], "nfe": 80,
                        "seconds": 0.01}, True, "images"),
    ("DecodeResponse", {"samples": [[0.3, -1.2]], "nfe": 80}, False, "no seconds"),
    ("JobAccepted", {"id": "j1", "status": "queued", "url": "/v1/jobs/j1"}, True, "accepted"),
    ("JobAccepted", {"id": "j1", "status": "running", "url": "/v1/jobs/j1"}, False, "running"),
    ("JobAccepted", {"id": "j1", "status": "queued", "url": "/jobs/j1"}, False, "bad url"),
    ("Job", JOB_QUEUED, True, "queued"),
    ("Job", JOB_RUNNING, True, "running"),
    ("Job", with_(JOB_RUNNING, progress={"step": 3, "steps": None, "nfe": 21.0}), True, "rk45"),
    ("Job", JOB_DONE, True, "done"),
    ("Job", with_(JOB_DONE, kind="likelihood", result=LIKELIHOOD_RESULT), True, "likelihood"),
    ("Job", with_(JOB_DONE, kind="anomaly", result=ANOMALY_RESULT), True, "anomaly"),
    ("Job", with_(JOB_DONE, kind="encode", result={"latents": [[1.0, 2.0]], "nfe": 3}), True,
     "encode"),
    ("Job", with_(JOB_DONE, kind="decode", result={"samples": [[1.0, 2.0]], "nfe": 3,
                                                   "seconds": 0.1}), True, "decode"),
    ("Job", with_(JOB_DONE, kind="samples", result=VECTOR_RESULT), True, "vector samples"),
    ("Job", JOB_FAILED, True, "failed"),
    ("Job", JOB_CANCELLED, True, "cancelled"),
    ("Job", with_(JOB_CANCELLED, error={"code": "cancelled", "message": "cancelled by DELETE"}),
     True, "cancelled with a reason"),
    ("Job", with_(JOB_DONE, error={"code": "cancelled", "message": "x"}), False, "done with error"),
    ("Job", without(JOB_QUEUED, "queue_position"), False, "queued without position"),
    ("Job", with_(JOB_RUNNING, queue_position=0), False, "running with position"),
    ("Job", without(JOB_DONE, "result"), False, "done without result"),
    ("Job", with_(JOB_RUNNING, result=IMAGE_RESULT), False, "running with result"),
    ("Job", without(JOB_FAILED, "error"), False, "failed without error"),
    ("Job", with_(JOB_DONE, kind="likelihood"), False, "likelihood with a samples result"),
    ("Job", with_(JOB_DONE, finished=None), False, "done without finish time"),
    ("Job", with_(JOB_QUEUED, started=1.7e9), False, "queued but started"),
    ("Job", with_(JOB_DONE, status="finished"), False, "unknown status"),
    ("Job", with_(JOB_DONE, kind="paint"), False, "unknown kind"),
    ("Job", without(JOB_RUNNING, "progress"), False, "no progress"),
    ("Job", with_(JOB_RUNNING, eta=3), False, "extra field"),
    ("SseProgress", {"step": 10, "steps": 100, "nfe": 20.0, "status": "running"}, True, "progress"),
    ("SseProgress", {"step": 10, "steps": 100, "nfe": 20.0}, False, "no status"),
    ("SsePreview", {"step": 10, "png_base64": PNG_B64}, True, "preview"),
    ("SsePreview", {"step": 10, "png_base64": "data:image/png;base64," + PNG_B64}, False,
     "data url out"),
]


@pytest.mark.parametrize("schema,instance,valid,label", CASES,
                         ids=[f"{c[0]}-{'valid' if c[2] else 'invalid'}-{c[3]}" for c in CASES])
def test_schema_payloads(schema, instance, valid, label):
    errs = C.errors(C.schema(schema), instance)
    if valid:
        assert not errs, [e.message for e in errs]
    else:
        assert errs, f"{schema} accepted an invalid payload ({label})"


def test_every_main_schema_has_valid_and_invalid_payloads():
    main = {"Health", "Ready", "Error", "ModelInfo", "ModelList", "Sampler", "SamplesRequest",
            "SamplesResponse", "InpaintRequest", "ColorizeRequest", "LikelihoodRequest",
            "LikelihoodResponse", "AnomalyRequest", "AnomalyResponse", "EncodeRequest",
            "EncodeResponse", "DecodeRequest", "DecodeResponse", "JobAccepted", "Job",
            "SseProgress", "SsePreview"}
    assert main <= set(SCHEMAS)
    for name in main:
        kinds = {valid for s, _, valid, _ in CASES if s == name}
        assert kinds == {True, False}, name


# ---- the response checker ---------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}


def test_path_matching_prefers_concrete_paths():
    assert C.match("/healthz") == "/healthz"
    assert C.match("/metrics") == "/metrics"
    assert C.match("/") == "/"
    assert C.match("/app.js") == "/{file}"
    assert C.match("/v1/models") == "/v1/models"
    assert C.match("/v1/models/gmm-2d") == "/v1/models/{model_id}"
    assert C.match("/v1/models/gmm-2d/samples?x=1") == "/v1/models/{model_id}/samples"
    assert C.match("/v1/jobs/abc/events") == "/v1/jobs/{job_id}/events"
    assert C.match("/v1/nope/x/y") is None


def test_checker_accepts_good_and_rejects_bad_responses():
    body = json.dumps({"error": {"code": "not_found", "message": "no model 'x'"}}).encode()
    assert C.check("GET", "/v1/models/x", 404, JSON, body)["error"]["code"] == "not_found"
    with pytest.raises(ContractError):   # wrong code for the status
        C.check("GET", "/v1/models/x", 404, JSON, body.replace(b"not_found", b"gone"))
    with pytest.raises(ContractError):   # not a ModelInfo
        C.check("GET", "/v1/models/x", 200, JSON, b'{"id": "x"}')
    with pytest.raises(ContractError):   # not JSON
        C.check("GET", "/v1/models", 200, JSON, b"<html>")
    with pytest.raises(ContractError):   # undeclared content type
        C.check("GET", "/v1/models", 200, {"Content-Type": "text/html"}, b"<html>")
    with pytest.raises(ContractError):   # undeclared status without default
        C.check("PATCH", "/v1/models", 418, JSON, b"{}")
    q = json.dumps({"error": {"code": "queue_full", "message": "queue full"}}).encode()
    with pytest.raises(ContractError):   # 429 needs Retry-After
        C.check("POST", "/v1/models/m/samples", 429, JSON, q)
    C.check("POST", "/v1/models/m/samples", 429, {**JSON, "Retry-After": "2"}, q)
    with pytest.raises(ContractError):   # Retry-After is an integer
        C.check("POST", "/v1/models/m/samples", 429, {**JSON, "retry-after": "soon"}, q)
    m = json.dumps({"error": {"code": "method_not_allowed", "message": "use GET"}}).encode()
    C.check("PUT", "/v1/models", 405, {**JSON, "Allow": "GET"}, m)   # undeclared method
    with pytest.raises(ContractError):
        C.check("PUT", "/v1/models", 405, JSON, m)                     # ... needs Allow
    C.check("GET", "/v1/nope/x/y", 404, JSON, body)                    # undeclared route
    png = png_encode(np.zeros((28, 28), dtype=np.uint8))
    hdr = {"Content-Type": "image/png", "X-Seed": "7", "X-NFE": "50", "X-Job-Id": "j1"}
    assert C.check("POST", "/v1/models/m/samples", 200, hdr, png) is None
    with pytest.raises(ContractError):   # X-Seed is required
        C.check("POST", "/v1/models/m/samples", 200, without(hdr, "X-Seed"), png)
    with pytest.raises(ContractError):   # a 2xx answer to a request that breaks the contract
        C.check("POST", "/v1/models/m/samples", 200, hdr, png, request_json={"stpes": 3})
    acc = json.dumps({"id": "j1", "status": "queued", "url": "/v1/jobs/j1"}).encode()
    C.check("POST", "/v1/models/m/samples", 202, {**JSON, "Location": "/v1/jobs/j1"}, acc)
    C.check("POST", "/v1/models/m/samples", 202,
            {**JSON, "Location": "http://127.0.0.1:8080/v1/jobs/j1"}, acc)
    with pytest.raises(ContractError):
        C.check("POST", "/v1/models/m/samples", 202, JSON, acc)       # no Location


# ---- the helpers --------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_encode_decode_roundtrip(channels):
    rng = np.random.default_rng(channels)
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    px = rng.integers(0, 256, size=shape, dtype=np.uint8)
    data = png_encode(px)
    assert png_info(data) == (7, 5, 8, {1: 0, 2: 4, 3: 2, 4: 6}[channels])
    assert np.array_equal(png_decode(data).reshape(shape), px)


def test_png_decoder_reads_libpng_output(tmp_path):
    """The decoder handles the filters libpng picks (the CLI writes with libpng)."""
    if not BIN.exists():
        pytest.skip("./scored is not built")
    out = tmp_path / "g.png"
    r = subprocess.run([str(BIN), "sample", "--model", "fmnist-gmm", "--n", "4", "--seed", "1",
                        "--steps", "30", "--out", str(out)], cwd=REPO, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert png_info(data)[:2] == grid_size(4) == (62, 62)
    px = png_decode(data)
    assert px.shape == (62, 62, 1)
    assert (px[0, :, 0] == 255).all() and (px[:, 0, 0] == 255).all()   # white padding
    try:
        from PIL import Image
    except ImportError:
        return
    import io
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), px[:, :, 0])


def test_grid_size_formula():
    assert grid_size(1) == (28, 28)
    assert grid_size(2) == (62, 32)
    assert grid_size(4) == (62, 62)
    assert grid_size(5) == (92, 62)
    assert grid_size(64) == (8 * 28 + 9 * 2,) * 2


def test_metrics_parser():
    text = """# HELP scored_requests_total Requests.
# TYPE scored_requests_total counter
scored_requests_total{endpoint="/healthz",status="200"} 3
scored_requests_total{endpoint="/v1/models/{model_id}/samples",status="422"} 1
# TYPE scored_running_jobs gauge
scored_running_jobs 0
scored_batch_size_bucket{le="+Inf"} 12
scored_batch_size_sum 40.5
scored_resident_memory_bytes 1.2e+07 1700000000000
"""
    s = parse_metrics(text)
    assert ("scored_requests_total", {"endpoint": "/healthz", "status": "200"}, 3.0) in s
    assert ("scored_batch_size_bucket", {"le": "+Inf"}, 12.0) in s
    assert len(s) == 6
    with pytest.raises(AssertionError):
        parse_metrics("scored_x{a=1} 3\n")
    with pytest.raises(AssertionError):
        parse_metrics("scored_x 3 4 5\n")


class _FakeStream:
    def __init__(self, chunks):
        self.chunks = chunks

    def iter_content(self, chunk_size=None):
        yield from self.chunks


def test_sse_parser():
    raw = (b': keep-alive\n\nevent: progress\ndata: {"step": 1}\n\nevent: prev',
           b'iew\r\ndata: {"step": 2,\ndata:  "x": 1}\r\n\r\nevent: done\ndata: {}\n\n')
    assert list(iter_sse(_FakeStream(raw))) == [
        ("progress", '{"step": 1}'), ("preview", '{"step": 2,\n "x": 1}'), ("done", "{}")]
