"""Asynchronous jobs: 202 with the job URL, polling, server-sent events (progress, previews, the
final event), cancelling queued and running jobs, 409 on finished jobs, 404 and 410."""

import json
import time

import numpy as np
import pytest

from e2e_util import (FAST, FM, G2, LONG, Api, assert_error, cancel_quietly, iter_sse, metrics,
                      metric_sum, png_decode, png_info, submit, unb64, wait_job, wait_until)

pytestmark = pytest.mark.server

SAMPLES = f"/v1/models/{FM}/samples"


@pytest.fixture
def cleanup():
    """cleanup(api, job_id): cancel the job at the end of the test, whatever happened."""
    jobs = []
    yield lambda api, job_id: jobs.append((api, job_id))
    for api, job_id in jobs:
        cancel_quietly(api, job_id)


def test_async_flag_answers_202_and_the_job_completes(api):
    body = {"n": 2, "seed": 8, "sampler": FAST}
    r = api.post(SAMPLES, json={**body, "async": True}, expect=202)
    acc = r.doc
    assert acc["status"] == "queued" and acc["url"] == f"/v1/jobs/{acc['id']}"
    assert r.headers["Location"].endswith(acc["url"])
    job = wait_job(api, acc["id"])
    assert job["status"] == "done", job
    assert job["id"] == acc["id"] and job["model"] == FM and job["kind"] == "samples"
    assert job["created"] <= job["started"] <= job["finished"]
    assert job["progress"]["step"] == job["progress"]["steps"] == 50
    res = job["result"]
    assert res["id"] == acc["id"]
    assert [im["seed"] for im in res["images"]] == [8, 8]
    # the same pixels as the synchronous call (format png becomes png_base64 in the result)
    sync = api.post(SAMPLES, json={**body, "format": "json"}, expect=200)
    for a, b in zip(res["images"], sync.doc["images"]):
        assert np.array_equal(png_decode(unb64(a["png_base64"])), png_decode(unb64(b["png_base64"])))


def test_async_prefer_header_answers_202(api):
    r = api.post(SAMPLES, json={"n": 1, "seed": 1, "sampler": FAST},
                 headers={"Prefer": "respond-async"}, expect=202)
    assert r.headers.get("Preference-Applied", "respond-async") == "respond-async"
    assert r.headers["Location"].endswith(r.doc["url"])
    assert wait_job(api, r.doc["id"])["status"] == "done"


def test_async_vector_samples_job(api):
    acc = submit(api, f"/v1/models/{G2}/samples", {"n": 3, "seed": 4, "sampler": {"steps": 100}})
    job = wait_job(api, acc["id"])
    assert job["status"] == "done"
    assert np.array(job["result"]["samples"]).shape == (3, 2)


def test_async_likelihood_job(api):
    acc = submit(api, f"/v1/models/{G2}/likelihood", {"data": [[1.0, 0.0]], "exact_divergence": True})
    job = wait_job(api, acc["id"])
    assert job["status"] == "done" and job["kind"] == "likelihood"
    assert len(job["result"]["results"]) == 1


def test_async_multipart_inpaint_job(api, fmnist_png, half_mask_png):
    files = {"image": ("i.png", fmnist_png, "image/png"),
             "mask": ("m.png", half_mask_png, "image/png"),
             "params": (None, json.dumps({"seed": 1, "sampler": FAST, "async": True}),
                        "application/json")}
    r = api.post(f"/v1/models/{FM}/inpaint", files=files, expect=202)
    job = wait_job(api, r.doc["id"])
    assert job["status"] == "done" and job["kind"] == "inpaint"
    out = png_decode(unb64(job["result"]["images"][0]["png_base64"]))
    assert np.array_equal(out[:, :14], png_decode(fmnist_png)[:, :14])


def test_async_encode_and_decode_jobs(api):
    acc = submit(api, f"/v1/models/{G2}/encode", {"data": [[1.0, 0.0]]})
    job = wait_job(api, acc["id"])
    assert job["status"] == "done" and job["kind"] == "encode"
    acc = submit(api, f"/v1/models/{G2}/decode", {"latents": job["result"]["latents"]})
    job = wait_job(api, acc["id"])
    assert job["status"] == "done" and job["kind"] == "decode"
    assert np.array(job["result"]["samples"]).shape == (1, 2)


def read_events(api, job_id, timeout=60):
    """All events of a job's stream (until the server ends it, within `timeout` s), as
    (name, data)."""
    r = api.get(f"/v1/jobs/{job_id}/events", stream=True, timeout=(5, 20), expect=200)
    assert r.headers["Content-Type"].startswith("text/event-stream")
    events = []
    t0 = time.monotonic()
    with r:
        for name, data in iter_sse(r):
            try:
                events.append((name, json.loads(data)))
            except ValueError:
                raise AssertionError(f"event {name}: data is not one JSON value: {data[:200]!r}")
            assert time.monotonic() - t0 < timeout, \
                f"the stream did not end within {timeout} s: {[n for n, _ in events][-5:]}"
    read_events.seconds = time.monotonic() - t0
    return events


def check_events(contract, events):
    """Every event's data matches its schema; the stream opens with a progress event and ends
    with the one final event."""
    assert events, "no events"
    assert events[0][0] == "progress", [n for n, _ in events]
    schema = {"progress": "SseProgress", "preview": "SsePreview", "done": "Job",
              "failed": "Job", "cancelled": "Job"}
    for name, data in events:
        assert name in schema, f"unknown event {name}"
        contract.validate(contract.schema(schema[name]), data, f"SSE {name} data")
    finals = [n for n, _ in events if n in ("done", "failed", "cancelled")]
    assert len(finals) == 1 and events[-1][0] == finals[0], [n for n, _ in events]


def test_events_stream_progress_then_done(api, contract):
    acc = submit(api, SAMPLES, {"n": 1, "seed": 2, "sampler": {
        "kind": "pc", "predictor": "reverse_diffusion", "corrector": "langevin",
        "corrector_steps": 2, "steps": 4000}})
    events = read_events(api, acc["id"])
    check_events(contract, events)
    progress = [d for n, d in events if n == "progress"]
    assert progress, [n for n, _ in events]
    steps = [p["step"] for p in progress]
    assert steps == sorted(steps) and all(p["steps"] == 4000 for p in progress)
    # at most 10 progress events a second (and the one sent when the stream opens)
    assert len(progress) <= 10 * read_events.seconds + 2, (len(progress), read_events.seconds)
    name, job = events[-1]
    assert name == "done" and job["status"] == "done" and job["id"] == acc["id"]
    assert png_info(unb64(job["result"]["images"][0]["png_base64"]))[:2] == (28, 28)


def test_planned_steps_are_known_from_submission(api, contract, cleanup):
    """A job's planned steps are reported from the moment it is accepted (queued or running);
    adaptive rk45 jobs report null (unknown in advance)."""
    acc = submit(api, SAMPLES, {"n": 1, "seed": 3, "sampler": LONG})
    cleanup(api, acc["id"])
    job = api.get(f"/v1/jobs/{acc['id']}", expect=200).doc
    assert job["progress"]["steps"] == LONG["steps"], job
    lik = submit(api, f"/v1/models/{G2}/likelihood", {"data": [[0.1, 0.2]]})
    done = wait_job(api, lik["id"])
    assert done["status"] == "done" and done["progress"]["steps"] is None, done


def test_events_stream_previews(api, contract):
    acc = submit(api, SAMPLES, {"n": 2, "seed": 2, "preview_every": 400, "sampler": {
        "kind": "pc", "predictor": "reverse_diffusion", "corrector": "langevin",
        "corrector_steps": 2, "steps": 4000}})
    events = read_events(api, acc["id"])
    check_events(contract, events)
    previews = [d for n, d in events if n == "preview"]
    assert previews, [n for n, _ in events]
    for p in previews:
        assert p["step"] % 400 == 0 and 0 < p["step"] <= 4000
        assert png_info(unb64(p["png_base64"]))[:2] == (62, 32)   # a grid of the 2 states
    assert events[-1][0] == "done"


def test_events_on_a_finished_job_are_its_state_and_the_final_event(api, contract):
    acc = submit(api, SAMPLES, {"n": 1, "seed": 2, "sampler": FAST})
    wait_job(api, acc["id"])
    events = read_events(api, acc["id"], timeout=10)
    check_events(contract, events)
    assert [n for n, _ in events] == ["progress", "done"]
    assert events[0][1]["status"] == "done" and events[1][1]["result"]


def test_cancel_a_running_job(api, contract, cleanup):
    acc = submit(api, SAMPLES, {"n": 8, "seed": 1, "sampler": LONG})
    cleanup(api, acc["id"])
    wait_job(api, acc["id"], statuses=("running",), timeout=10)
    wait_until(lambda: api.get(f"/v1/jobs/{acc['id']}", expect=200).doc["progress"]["step"] > 0,
               10, what="the job to make progress")
    t0 = time.monotonic()
    r = api.delete(f"/v1/jobs/{acc['id']}", expect=200)
    assert r.doc["status"] == "cancelled" and r.doc["finished"] is not None
    job = wait_job(api, acc["id"], statuses=("cancelled",), timeout=5)
    assert 0 < job["progress"]["step"] < LONG["steps"]
    assert "result" not in job
    wait_until(lambda: metric_sum(metrics(api), "scored_running_jobs") == 0, 5,
               what="no running job after the cancel")
    assert time.monotonic() - t0 < 5
    events = read_events(api, acc["id"], timeout=10)
    check_events(contract, events)
    assert [n for n, _ in events] == ["progress", "cancelled"]
    # cancelling again answers the same
    again = api.delete(f"/v1/jobs/{acc['id']}", expect=200)
    assert again.doc["status"] == "cancelled"


def test_cancel_a_running_job_ends_its_event_stream(api, contract, cleanup):
    acc = submit(api, SAMPLES, {"n": 1, "seed": 1, "sampler": LONG})
    cleanup(api, acc["id"])
    wait_job(api, acc["id"], statuses=("running",), timeout=10)
    r = api.get(f"/v1/jobs/{acc['id']}/events", stream=True, timeout=30, expect=200)
    events = []
    with r:
        for name, data in iter_sse(r):
            events.append((name, json.loads(data)))
            if len(events) == 1:
                api.delete(f"/v1/jobs/{acc['id']}", expect=200)
    check_events(contract, events)
    assert events[0][0] == "progress" and events[-1][0] == "cancelled"


def test_cancel_a_queued_job(limits_api, contract, cleanup):
    """With --max-batch 1 a second job waits while a long one runs."""
    api = limits_api
    wait_until(lambda: metric_sum(metrics(api), "scored_running_jobs") == 0
               and metric_sum(metrics(api), "scored_queue_length") == 0, 10,
               what="an idle server")
    first = submit(api, SAMPLES, {"n": 1, "seed": 1, "sampler": LONG})
    cleanup(api, first["id"])
    wait_job(api, first["id"], statuses=("running",), timeout=10)
    second = submit(api, SAMPLES, {"n": 1, "seed": 2, "sampler": FAST})
    cleanup(api, second["id"])
    job = api.get(f"/v1/jobs/{second['id']}", expect=200).doc
    assert job["status"] == "queued" and job["queue_position"] == 0 and job["started"] is None
    assert metric_sum(metrics(api), "scored_queue_length") == 1
    r = api.delete(f"/v1/jobs/{second['id']}", expect=200)
    assert r.doc["status"] == "cancelled"
    job = api.get(f"/v1/jobs/{second['id']}", expect=200).doc
    assert job["status"] == "cancelled" and job["started"] is None
    assert metric_sum(metrics(api), "scored_queue_length") == 0
    events = read_events(api, second["id"], timeout=10)
    check_events(contract, events)
    assert [n for n, _ in events] == ["progress", "cancelled"]
    # the running one is unaffected, then cancelled too
    assert api.get(f"/v1/jobs/{first['id']}", expect=200).doc["status"] == "running"
    assert api.delete(f"/v1/jobs/{first['id']}", expect=200).doc["status"] == "cancelled"
    wait_until(lambda: metric_sum(metrics(api), "scored_running_jobs") == 0, 5,
               what="no running job")


def test_queued_job_runs_when_the_running_one_is_cancelled(limits_api, cleanup):
    api = limits_api
    first = submit(api, SAMPLES, {"n": 1, "seed": 1, "sampler": LONG})
    cleanup(api, first["id"])
    wait_job(api, first["id"], statuses=("running",), timeout=10)
    second = submit(api, SAMPLES, {"n": 1, "seed": 2, "sampler": FAST})
    cleanup(api, second["id"])
    assert api.get(f"/v1/jobs/{second['id']}", expect=200).doc["status"] == "queued"
    api.delete(f"/v1/jobs/{first['id']}", expect=200)
    assert wait_job(api, second["id"], timeout=10)["status"] == "done"


def test_delete_a_done_job_is_409(api):
    acc = submit(api, SAMPLES, {"n": 1, "seed": 1, "sampler": FAST})
    assert wait_job(api, acc["id"])["status"] == "done"
    assert_error(api.delete(f"/v1/jobs/{acc['id']}"), 409, "conflict")
    assert api.get(f"/v1/jobs/{acc['id']}", expect=200).doc["status"] == "done"


def test_unknown_job_is_404(api):
    for r in (api.get("/v1/jobs/nosuchjob"), api.delete("/v1/jobs/nosuchjob"),
              api.get("/v1/jobs/nosuchjob/events")):
        assert_error(r, 404, "not_found")


def test_finished_job_expires_with_410(spawn, contract):
    srv = spawn("ttl", args=["--job-ttl", 1])
    api = Api(srv.url, contract)
    acc = submit(api, SAMPLES, {"n": 1, "seed": 1, "sampler": FAST})
    assert wait_job(api, acc["id"])["status"] == "done"

    def expired():
        r = api.get(f"/v1/jobs/{acc['id']}")
        return r if r.status_code != 200 else None

    assert_error(wait_until(expired, timeout=5, interval=0.1, what="the job to expire"), 410, "gone")
    r = api.get(f"/v1/jobs/{acc['id']}/events")
    assert_error(r, r.status_code if r.status_code in (404, 410) else 410)
    assert srv.stop(15) == 0
