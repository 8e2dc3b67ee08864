"""Every error status with its JSON body (400, 401, 404, 405, 413, 415, 422, 429), the client
that disconnects, and abuse cases; after each of them every live server still answers /healthz
(the autouse fixture of conftest.py checks it)."""

import json
import socket
import threading
import time

import pytest
import requests

from e2e_util import (API_KEY, FAST, FM, G2, LONG, assert_error, b64, cancel_quietly,
                      metrics, metric_sum, raw_http, read_http_response, wait_until)

pytestmark = pytest.mark.server

SAMPLES = f"/v1/models/{FM}/samples"
INPAINT = f"/v1/models/{FM}/inpaint"
JSON_CT = {"Content-Type": "application/json"}


# ---- 400 --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [b'{"n": 1,', b"", b"[1, 2]", b'"n"', b"null", b'{"n": NaN}',
                                  b'{"seed": 1e400}', b'{"seed": 18446744073709551616}',
                                  b'{"n": 1}garbage', b'\xff\xfe{"n": 1}',
                                  b'{"n": "\xc3\x28"}'],
                         ids=["truncated", "empty", "array", "string", "null", "nan",
                              "real-overflow", "integer-overflow", "trailing", "bom-utf16",
                              "bad-utf8"])
def test_400_malformed_json(api, body):
    assert_error(api.post(SAMPLES, data=body, headers=JSON_CT), 400, "malformed_input")


@pytest.mark.parametrize("body", [{"n": "three"}, {"n": 1.5}, {"seed": "7"}, {"sampler": "pc"},
                                  {"sampler": {"steps": "50"}}, {"grid": "yes"}, {"label": [1]},
                                  {"async": 1}],
                         ids=["n-string", "n-float", "seed-string", "sampler-string",
                              "steps-string", "grid-string", "label-array", "async-int"])
def test_400_wrong_json_types(api, body):
    assert_error(api.post(SAMPLES, json=body), 400, "malformed_input")


def test_400_deeply_nested_json(api):
    deep = b'{"data": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    assert_error(api.post(f"/v1/models/{G2}/likelihood", data=deep, headers=JSON_CT), 400,
                 "malformed_input")


def test_400_bad_base64(api, half_mask_png):
    r = api.post(INPAINT, json={"image": "@@@not*base64@@@", "mask": b64(half_mask_png)})
    assert_error(r, 400, "malformed_input")
    r = api.post(f"/v1/models/{FM}/likelihood", json={"images": ["iVBORw0KGgo!!"]})
    assert_error(r, 400, "malformed_input")


def test_400_base64_that_is_not_a_png(api, half_mask_png):
    r = api.post(INPAINT, json={"image": b64(b"hello, this is not a PNG"),
                                "mask": b64(half_mask_png)})
    assert_error(r, 400, "malformed_input")


def test_400_corrupt_png(api, fmnist_png, half_mask_png):
    broken = fmnist_png[:40] + b"\x00" * 30 + fmnist_png[70:]
    r = api.post(INPAINT, files={"image": ("i.png", broken, "image/png"),
                                 "mask": ("m.png", half_mask_png, "image/png")})
    assert_error(r, 400, "malformed_input")
    truncated = fmnist_png[: len(fmnist_png) // 2]
    r = api.post(f"/v1/models/{FM}/likelihood", json={"images": [b64(truncated)]})
    assert_error(r, 400, "malformed_input")


def test_400_bad_multipart(api):
    ct = {"Content-Type": "multipart/form-data; boundary=XyZzY"}
    assert_error(api.post(INPAINT, data=b"this is not multipart at all", headers=ct), 400,
                 "malformed_input")
    unterminated = (b"--XyZzY\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\""
                    b"\r\nContent-Type: image/png\r\n\r\n\x89PNG")
    assert_error(api.post(INPAINT, data=unterminated, headers=ct), 400, "malformed_input")
    assert_error(api.post(INPAINT, data=b"--x\r\n\r\n--x--\r\n",
                          headers={"Content-Type": "multipart/form-data"}), 400,
                 "malformed_input")   # no boundary parameter


def test_400_multipart_params_not_json(api, fmnist_png, half_mask_png):
    r = api.post(INPAINT, files={"image": ("i.png", fmnist_png, "image/png"),
                                 "mask": ("m.png", half_mask_png, "image/png"),
                                 "params": (None, "{seed: 1", "application/json")})
    assert_error(r, 400, "malformed_input")


# ---- 401 --------------------------------------------------------------------------------------------

def test_401_without_a_key(auth_api):
    for r in (auth_api.get("/v1/models"), auth_api.get(f"/v1/models/{FM}"),
              auth_api.post(SAMPLES, json={"n": 1, "sampler": FAST}),
              auth_api.get("/v1/jobs/somejob"), auth_api.get("/metrics")):
        assert_error(r, 401, "unauthorized")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer wrong-key"},
                                     {"Authorization": f"Bearer {API_KEY}x"},
                                     {"Authorization": f"Basic {API_KEY}"},
                                     {"Authorization": API_KEY},
                                     {"X-API-Key": "wrong-key"},
                                     {"X-API-Key": ""}],
                         ids=["wrong-bearer", "longer-key", "basic", "no-scheme",
                              "wrong-x-api-key", "empty-x-api-key"])
def test_401_with_a_wrong_key(auth_api, headers):
    assert_error(auth_api.get("/v1/models", headers=headers), 401, "unauthorized")


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {API_KEY}"},
                                     {"X-API-Key": API_KEY}], ids=["bearer", "x-api-key"])
def test_with_the_key_everything_works(auth_api, headers):
    api = auth_api.with_headers(headers)
    assert {FM, G2, "gmm-2d-ve"} <= {m["id"] for m in api.get("/v1/models", expect=200).doc["models"]}
    r = api.post(SAMPLES, json={"n": 1, "seed": 1, "sampler": FAST}, expect=200)
    assert r.headers["Content-Type"] == "image/png"
    api.get("/metrics", expect=200)
    acc = api.post(SAMPLES, json={"n": 1, "sampler": FAST, "async": True}, expect=202).doc
    assert_error(auth_api.get(f"/v1/jobs/{acc['id']}"), 401, "unauthorized")
    api.get(f"/v1/jobs/{acc['id']}", expect=200)


def test_health_readiness_and_static_files_need_no_key(auth_api):
    assert auth_api.get("/healthz", expect=200).doc == {"status": "ok"}
    assert auth_api.get("/readyz", expect=200).doc["status"] == "ready"
    auth_api.get("/README.md", expect=200)           # static/README.md


# ---- 404 and 405 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [("GET", "/v1/nope"), ("GET", "/v1"),
                                         ("GET", "/v1/models/gmm-2d/nope"),
                                         ("POST", "/v1/models/gmm-2d/nope"),
                                         ("GET", "/v2/models"), ("GET", "/v1/jobs/x/y/z"),
                                         ("POST", "/v1/models/nosuchmodel/likelihood")])
def test_404_unknown_route_or_model(api, method, path):
    assert_error(api.request(method, path, json={} if method == "POST" else None), 404,
                 "not_found")


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/v1/models", "GET"), ("POST", "/v1/models", "GET"),
    ("DELETE", "/v1/models/gmm-2d", "GET"), ("GET", f"/v1/models/{FM}/samples", "POST"),
    ("PUT", f"/v1/models/{FM}/samples", "POST"), ("POST", "/healthz", "GET"),
    ("POST", "/v1/jobs/somejob", "GET"), ("PATCH", "/v1/jobs/somejob", "GET"),
    ("POST", "/metrics", "GET")])
def test_405_with_allow_header(api, method, path, allowed):
    r = api.request(method, path, data=b"{}", headers=JSON_CT)
    assert_error(r, 405, "method_not_allowed")
    methods = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allowed in methods and method not in methods
    if path.startswith("/v1/jobs/"):
        assert "DELETE" in methods


# ---- 413 --------------------------------------------------------------------------------------------

def _big_json_body(n_bytes):
    head, tail = b'{"images": ["', b'"]}'
    return head + b"A" * (n_bytes - len(head) - len(tail)) + tail


def test_413_body_over_max_body_mb_with_expect_continue(limits_server, contract):
    """The server refuses by Content-Length, before the body is sent."""
    body = _big_json_body(2 * 1024 * 1024)
    head = (f"POST /v1/models/{FM}/likelihood HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Expect: 100-continue\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", limits_server.port), timeout=15) as s:
        s.sendall(head)
        status, headers, data = read_http_response(s)
        if status == 100:
            try:
                s.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            status, headers, data = read_http_response(s)
    assert status == 413, (status, data[:200])
    doc = contract.check("POST", f"/v1/models/{FM}/likelihood", status, headers, data)
    assert doc["error"]["code"] == "too_large"


def test_413_body_over_max_body_mb(limits_api):
    """A plain upload of 2 MB (the server may close the connection once it has answered)."""
    for data in (_big_json_body(2 * 1024 * 1024),
                 (chunk for chunk in [_big_json_body(2 * 1024 * 1024)[i:i + 65536]
                                      for i in range(0, 2 * 1024 * 1024, 65536)])):
        try:
            r = limits_api.post(f"/v1/models/{FM}/likelihood", data=data, headers=JSON_CT,
                                timeout=30)
        except requests.ConnectionError:
            continue
        assert_error(r, 413, "too_large")


def test_body_under_max_body_mb_is_accepted(limits_api, fmnist_png):
    pad = " " * (900 * 1024)     # 0.9 MiB of JSON whitespace
    data = ('{"images": ["' + b64(fmnist_png) + '"]' + pad + "}").encode()
    r = limits_api.post(f"/v1/models/{FM}/likelihood", data=data, headers=JSON_CT, expect=200)
    assert len(r.doc["results"]) == 1


def test_413_n_over_the_limit(api):
    assert_error(api.post(SAMPLES, json={"n": 65, "sampler": FAST}), 413, "too_large")
    assert_error(api.post(SAMPLES, json={"n": 1000000, "sampler": FAST}), 413, "too_large")


def test_413_png_too_large_is_refused_before_decoding(api):
    """A 60000 x 60000 PNG header with a tiny body: refused from its IHDR, not decoded."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 60001 * 4)) + chunk(b"IEND", b""))
    r = api.post(f"/v1/models/{FM}/likelihood", json={"images": [b64(bomb)]})
    assert_error(r, 413, "too_large")


# ---- 415 --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "application/x-npy",
                                   "application/x-www-form-urlencoded", None])
def test_415_unsupported_content_type(api, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    r = api.post(SAMPLES, data=b'{"n": 1}', headers=headers)
    assert_error(r, 415, "unsupported_media_type")


def test_415_on_likelihood_and_inpaint(api):
    assert_error(api.post(f"/v1/models/{G2}/likelihood", data=b"1,0", headers={
        "Content-Type": "text/csv"}), 415, "unsupported_media_type")
    assert_error(api.post(INPAINT, data=b"\x89PNG", headers={"Content-Type": "image/png"}), 415,
                 "unsupported_media_type")


# ---- 422 --------------------------------------------------------------------------------------------

INVALID = [
    ({"sampler": {"predictor": "heun"}}, "invalid_argument", "unknown predictor"),
    ({"sampler": {"corrector": "metropolis"}}, "invalid_argument", "unknown corrector"),
    ({"sampler": {"kind": "sde"}}, "invalid_argument", "unknown kind"),
    ({"sampler": {"kind": "ode", "solver": "rk4"}}, "invalid_argument", "unknown solver"),
    ({"sampler": {"steps": 0}}, "invalid_argument", "steps 0"),
    ({"sampler": {"steps": 10001}}, "invalid_argument", "steps over --max-steps"),
    ({"sampler": {"steps": 100001}}, "invalid_argument", "steps over the limit"),
    ({"sampler": {"kind": "ode", "solver": "euler", "steps": 0}}, "invalid_argument", "ode steps 0"),
    ({"sampler": {"snr": 0}}, "invalid_argument", "snr 0"),
    ({"sampler": {"corrector_steps": 0}}, "invalid_argument", "corrector steps 0"),
    ({"sampler": {"kind": "ode", "rtol": 0}}, "invalid_argument", "rtol 0"),
    ({"sampler": {"eps": 0.5}}, "invalid_argument", "eps 0.5"),
    ({"sampler": {"eps": 0}}, "invalid_argument", "eps 0"),
    ({"sampler": {"stpes": 50}}, "invalid_argument", "unknown sampler field"),
    ({"stpes": 50}, "invalid_argument", "unknown field"),
    ({"n": 0}, "invalid_argument", "n 0"),
    ({"n": -3}, "invalid_argument", "n negative"),
    ({"seed": -1}, "invalid_argument", "seed negative"),
    ({"seed": 2 ** 53}, "invalid_argument", "seed 2^53"),
    ({"label": 10}, "invalid_argument", "label out of range"),
    ({"label": -1}, "invalid_argument", "label negative"),
    ({"label": "Hat"}, "invalid_argument", "unknown label name"),
    ({"label": 1, "guidance": -1}, "invalid_argument", "negative guidance"),
    ({"label": 1, "guidance": 101}, "invalid_argument", "guidance over 100"),
    ({"format": "jpeg"}, "invalid_argument", "unknown format"),
    ({"preview_every": 0, "async": True}, "invalid_argument", "preview_every 0"),
    ({"sampler": {"kind": "pc", "predictor": "none", "corrector": "none"}},
     "unsupported_combination", "nothing samples"),
]


@pytest.mark.parametrize("body,code,why", INVALID, ids=[c[2] for c in INVALID])
def test_422_invalid_samples_request(api, body, code, why):
    body = {"n": 1, **body}
    if "sampler" in body and "steps" not in body["sampler"] and body["sampler"].get("kind") != "ode":
        body["sampler"] = {"steps": 50, **body["sampler"]}
    assert_error(api.post(SAMPLES, json=body), 422, code)


@pytest.mark.parametrize("sampler", [{"predictor": "ancestral", "corrector": "none"},
                                     {"predictor": "reverse_diffusion", "corrector": "langevin"},
                                     {"predictor": "euler_maruyama", "corrector": "ald"}],
                         ids=["ancestral", "langevin", "ald"])
def test_422_subvp_refuses_ancestral_and_correctors(aux_api, sampler):
    r = aux_api.post("/v1/models/gmm-2d-subvp/samples",
                     json={"n": 1, "sampler": {"kind": "pc", "steps": 50, **sampler}})
    assert_error(r, 422, "unsupported_combination")
    ok = aux_api.post("/v1/models/gmm-2d-subvp/samples",
                      json={"n": 1, "sampler": {"kind": "pc", "steps": 50,
                                                "predictor": "euler_maruyama", "corrector": "none"}},
                      expect=200)
    assert len(ok.doc["samples"]) == 1


@pytest.mark.parametrize("body", [{"data": [[1.0, 0.0]], "probes": 0},
                                  {"data": [[1.0, 0.0]], "probes": 65},
                                  {"data": [[1.0, 0.0]], "hutchinson": "normal"},
                                  {"data": [[1.0, 0.0]], "solver": "rk4"},
                                  {"data": [[1.0, 0.0]], "rtol": 2},
                                  {"data": [[1.0, 0.0]], "threshold": 1.0}],
                         ids=["probes-0", "probes-65", "probe-kind", "solver", "rtol", "threshold"])
def test_422_invalid_likelihood_request(api, body):
    assert_error(api.post(f"/v1/models/{G2}/likelihood", json=body), 422, "invalid_argument")


# ---- 429 --------------------------------------------------------------------------------------------

def test_429_under_a_flood(limits_api):
    """--queue 2 --max-batch 1: one job runs, two wait, the rest are refused with Retry-After."""
    api = limits_api
    wait_until(lambda: metric_sum(metrics(api), "scored_running_jobs") == 0
               and metric_sum(metrics(api), "scored_queue_length") == 0, 10,
               what="an idle server")
    barrier = threading.Barrier(20)
    results = [None] * 20

    def fire(i):
        barrier.wait()
        try:
            results[i] = api.post(SAMPLES, json={"n": 1, "seed": i, "sampler": LONG,
                                                 "async": True}, timeout=30)
        except Exception as e:      # reported below
            results[i] = e

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    accepted = [r.doc["id"] for r in results
                if isinstance(r, requests.Response) and r.status_code == 202]
    try:
        assert all(isinstance(r, requests.Response) for r in results), results
        statuses = sorted(r.status_code for r in results)
        assert set(statuses) <= {202, 429}, statuses
        refused = [r for r in results if r.status_code == 429]
        assert refused, statuses
        assert 1 <= len(accepted) <= 3, statuses
        for r in refused:
            assert_error(r, 429, "queue_full")
            assert int(r.headers["Retry-After"]) >= 1
        # a synchronous request is refused the same way while the queue is full
        r = api.post(SAMPLES, json={"n": 1, "sampler": FAST})
        assert_error(r, 429, "queue_full")
        assert int(r.headers["Retry-After"]) >= 1
    finally:
        for job_id in accepted:
            cancel_quietly(api, job_id)
    wait_until(lambda: metric_sum(metrics(api), "scored_running_jobs") == 0, 10,
               what="the flood to drain")
    api.post(SAMPLES, json={"n": 1, "sampler": FAST}, expect=200)


# ---- the client that goes away ----------------------------------------------------------------------

def test_client_disconnect_cancels_its_synchronous_job(api, server):
    wait_until(lambda: metric_sum(metrics(api), "scored_running_jobs") == 0, 10,
               what="an idle server")
    body = json.dumps({"n": 8, "seed": 1, "sampler": LONG}).encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(f"POST {SAMPLES} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    time.sleep(0.3)
    wait_until(lambda: metric_sum(metrics(api), "scored_running_jobs") >= 1, 5,
               what="the job to run")
    s.close()
    wait_until(lambda: metric_sum(metrics(api), "scored_running_jobs") == 0, 5,
               what="the abandoned job to be cancelled")


def test_client_disconnect_while_queued(limits_api, limits_server):
    """A synchronous request that waits in the queue and is abandoned leaves the queue."""
    api = limits_api
    first = api.post(SAMPLES, json={"n": 1, "sampler": LONG, "async": True}, expect=202).doc
    try:
        wait_until(lambda: api.get(f"/v1/jobs/{first['id']}", expect=200).doc["status"] == "running",
                   10, what="the first job to run")
        body = json.dumps({"n": 1, "sampler": FAST}).encode()
        s = socket.create_connection(("127.0.0.1", limits_server.port), timeout=10)
        s.sendall(f"POST {SAMPLES} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        wait_until(lambda: metric_sum(metrics(api), "scored_queue_length") == 1, 5,
                   what="the request to wait in the queue")
        s.close()
        wait_until(lambda: metric_sum(metrics(api), "scored_queue_length") == 0, 5,
                   what="the abandoned request to leave the queue")
    finally:
        cancel_quietly(api, first["id"])


# ---- more abuse -------------------------------------------------------------------------------------

def test_garbage_request_line(server):
    """libmicrohttpd answers this itself (its own body) or closes the connection."""
    try:
        status, headers, body = raw_http(server.port, b"HELLO WORLD\r\n\r\n")
    except ConnectionError:
        return
    assert 400 <= status < 500


def test_half_request_then_close(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(f"POST {SAMPLES} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: 1000\r\n\r\n{{\"n\": 1,".encode())
    s.close()


def test_many_connections_at_once(api):
    statuses = []

    def one(i):
        try:
            statuses.append(api.get("/v1/models", timeout=30).status_code)
        except Exception as e:      # reported below
            statuses.append(repr(e)[:300])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [200] * 64
