"""Operations: Prometheus metrics, graceful shutdown on SIGTERM, batch invariance through the
server, SIGHUP reloading the models directory, and configuration by environment variables."""

import json
import shutil
import signal
import threading
import time

import pytest
import requests

from e2e_util import (FAST, FM, G2, LONG, REPO, Api, assert_error, metrics, metric_sum,
                      parse_metrics, png_info, wait_until)

pytestmark = pytest.mark.server

SAMPLES = f"/v1/models/{FM}/samples"

FAMILIES = {  # name: type
    "scored_requests_total": "counter", "scored_queue_length": "gauge",
    "scored_running_jobs": "gauge", "scored_batch_size": "histogram",
    "scored_score_evaluations_total": "counter", "scored_request_duration_seconds": "histogram",
    "scored_queue_wait_seconds": "histogram", "scored_compute_seconds": "histogram",
    "scored_resident_memory_bytes": "gauge"}


def test_metrics_text_format_and_families(api):
    api.post(SAMPLES, json={"n": 2, "seed": 1, "sampler": FAST}, expect=200)
    r = api.get("/metrics", expect=200)
    ctype = r.headers["Content-Type"]
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    samples = parse_metrics(r.text)                 # every non-comment line parses
    types = {}
    for line in r.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            types[name] = typ
    for name, typ in FAMILIES.items():
        assert types.get(name) == typ, f"{name}: TYPE {types.get(name)}"
        names = {n for n, _, _ in samples}
        if typ == "histogram":
            assert {f"{name}_bucket", f"{name}_sum", f"{name}_count"} <= names, name
            inf = [v for n, l, v in samples if n == f"{name}_bucket" and l.get("le") == "+Inf"]
            assert inf, f"{name}: no +Inf bucket"
        else:
            assert name in names, name
    assert metric_sum(samples, "scored_resident_memory_bytes") > 1e6
    assert metric_sum(samples, "scored_score_evaluations_total") >= 100
    for n, labels, v in samples:
        if n == "scored_requests_total":
            assert set(labels) == {"endpoint", "status"} and labels["status"].isdigit(), labels


def test_metrics_request_counters_increase(api):
    before = metrics(api)
    for _ in range(3):
        api.get("/healthz", expect=200)
    api.post(SAMPLES, json={"n": 1, "sampler": {"steps": 0}}, expect=422)
    api.post(SAMPLES, json={"n": 1, "seed": 2, "sampler": FAST}, expect=200)
    after = metrics(api)

    def count(s, **labels):
        return metric_sum(s, "scored_requests_total", **labels)

    assert count(after, endpoint="healthz", status=200) - \
        count(before, endpoint="healthz", status=200) >= 3
    ep = "samples"
    assert count(after, endpoint=ep, status=422) - count(before, endpoint=ep, status=422) == 1
    assert count(after, endpoint=ep, status=200) - count(before, endpoint=ep, status=200) == 1
    assert count(after) - count(before) >= 6      # the /metrics call itself counts too
    evals = metric_sum(after, "scored_score_evaluations_total") - \
        metric_sum(before, "scored_score_evaluations_total")
    assert evals >= 50
    assert metric_sum(after, "scored_request_duration_seconds_count") > \
        metric_sum(before, "scored_request_duration_seconds_count")


# ---- graceful shutdown ----------------------------------------------------------------------------

def _sync_in_thread(api, body, out):
    def run():
        try:
            out["r"] = api.post(SAMPLES, json=body, timeout=60)
        except requests.RequestException as e:
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    return t


def test_sigterm_lets_the_running_request_finish(spawn, contract):
    srv = spawn("graceful", args=["--grace", 30])
    api = Api(srv.url, contract)
    out = {}
    t = _sync_in_thread(api, {"n": 1, "seed": 5, "sampler": {
        "kind": "pc", "predictor": "reverse_diffusion", "corrector": "langevin",
        "corrector_steps": 2, "steps": 10000}}, out)
    wait_until(lambda: metric_sum(metrics(api), "scored_running_jobs") >= 1, 5,
               what="the job to run")
    srv.signal(signal.SIGTERM)
    t0 = time.monotonic()

    def not_ready():
        try:
            r = api.get("/readyz", timeout=2)
        except requests.ConnectionError:
            return "closed"
        if r.status_code == 503:
            assert_error(r, 503, "shutting_down")
            return "503"
        return None
    wait_until(not_ready, 2, 0.02, "/readyz to turn 503 or the port to close")
    # new work is refused
    try:
        r = api.post(SAMPLES, json={"n": 1, "sampler": FAST}, timeout=5)
        assert_error(r, 503, "shutting_down")
    except requests.ConnectionError:
        pass
    t.join(60)
    assert "error" not in out, out
    r = out["r"]
    assert r.status_code == 200, r.content[:300]
    assert png_info(r.content)[:2] == (28, 28)
    rc = srv.wait(15)
    assert rc == 0, f"exit status {rc}:\n{srv.log_tail()}"
    assert time.monotonic() - t0 < 30


def test_sigterm_cancels_what_outlives_the_grace_period(spawn, contract):
    srv = spawn("grace1", args=["--grace", 1])
    api = Api(srv.url, contract)
    acc = api.post(SAMPLES, json={"n": 1, "sampler": LONG, "async": True}, expect=202).doc
    out = {}
    t = _sync_in_thread(api, {"n": 1, "seed": 5, "sampler": LONG}, out)
    wait_until(lambda: metric_sum(metrics(api), "scored_running_jobs") >= 2, 5,
               what="both jobs to run")
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    t.join(20)
    assert "error" not in out, out
    assert_error(out["r"], 503, "shutting_down")
    rc = srv.wait(10)
    assert rc == 0, f"exit status {rc}:\n{srv.log_tail()}"
    assert time.monotonic() - t0 < 10
    assert acc["id"]


def test_sigterm_on_an_idle_server_exits_0_at_once(spawn):
    srv = spawn("idle")
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait(5) == 0
    assert time.monotonic() - t0 < 5


# ---- batch invariance -----------------------------------------------------------------------------

TARGET = {"n": 1, "seed": 7, "sampler": {"kind": "pc", "predictor": "reverse_diffusion",
                                         "corrector": "langevin", "steps": 200}}


def _others():
    out = []
    samplers = [
        {"kind": "pc", "predictor": "euler_maruyama", "corrector": "none", "steps": 800},
        {"kind": "pc", "predictor": "reverse_diffusion", "corrector": "langevin", "steps": 400},
        {"kind": "pc", "predictor": "ancestral", "corrector": "ald", "steps": 300},
        {"kind": "ode", "solver": "heun", "steps": 500},
        {"kind": "ode", "solver": "euler", "steps": 900},
        {"kind": "ode", "solver": "rk45", "rtol": 1e-5, "atol": 1e-5},
    ]
    for i in range(14):
        body = {"n": 1 + i % 4, "seed": 100 + i, "sampler": samplers[i % len(samplers)]}
        if i % 5 == 0:
            body["label"] = i % 10
        model = G2 if i % 7 == 3 else FM
        out.append((f"/v1/models/{model}/samples", body))
    out.append((SAMPLES, {**TARGET, "seed": 8}))       # a neighbour seed, same settings
    return out


def test_batch_invariance_amid_15_concurrent_requests(api):
    alone = api.post(SAMPLES, json=TARGET, expect=200).content
    others = _others()
    assert len(others) == 15
    barrier = threading.Barrier(len(others) + 1)
    results = {}

    def run(key, path, body):
        barrier.wait()
        try:
            results[key] = api.post(path, json=body, timeout=120)
        except Exception as e:      # reported below
            results[key] = e

    threads = [threading.Thread(target=run, args=(i, p, b)) for i, (p, b) in enumerate(others)]
    threads.append(threading.Thread(target=run, args=("target", SAMPLES, TARGET)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 16
    for key, r in results.items():
        assert isinstance(r, requests.Response), (key, r)
        assert r.status_code == 200, (key, r.content[:300])
    assert results["target"].content == alone
    again = api.post(SAMPLES, json=TARGET, expect=200).content
    assert again == alone


# ---- SIGHUP -----------------------------------------------------------------------------------------

def test_sighup_reloads_the_models_directory(spawn, contract, workdir):
    models = workdir / "reload-models"
    models.mkdir()
    shutil.copy(REPO / "models" / "gmm-2d.json", models / "gmm-2d.json")
    shutil.copy(REPO / "models" / "gmm-2d-ve.json", models / "gmm-2d-ve.json")
    srv = spawn("reload", models=models)
    api = Api(srv.url, contract)

    def ids():
        return {m["id"] for m in api.get("/v1/models", expect=200).doc["models"]}
    assert ids() == {"gmm-2d", "gmm-2d-ve"}

    m = json.loads((REPO / "models" / "gmm-2d.json").read_text())
    m["name"] = "gmm-2d-copy"
    (models / "gmm-2d-copy.json").write_text(json.dumps(m))
    (models / "broken.json").write_text('{"kind": "gmm", "shape": [2], ')
    (models / "gmm-2d-ve.json").unlink()
    srv.signal(signal.SIGHUP)
    wait_until(lambda: ids() == {"gmm-2d", "gmm-2d-copy"}, 10, 0.1, "the reload")
    assert api.get("/readyz", expect=200).doc["models"] == 2
    r = api.post("/v1/models/gmm-2d-copy/samples", json={"n": 2, "seed": 1}, expect=200)
    assert len(r.doc["samples"]) == 2
    assert_error(api.get("/v1/models/gmm-2d-ve"), 404, "not_found")
    assert_error(api.get("/v1/models/broken"), 404, "not_found")
    assert srv.stop(15) == 0


def test_environment_variables_configure_the_server(spawn, contract):
    srv = spawn("env", use_env=True)
    api = Api(srv.url, contract)
    assert {FM, G2, "gmm-2d-ve"} <= {m["id"] for m in api.get("/v1/models", expect=200).doc["models"]}
    assert srv.stop(15) == 0
