"""Bounded memory: the server's resident set does not grow over 10,000 requests.

A mix of synchronous samples, likelihoods, async jobs polled to the end, model reads and
refused requests runs through one server; its VmRSS (from /proc) after 10,000 more requests
must stay within 1 MiB of the figure after a 7,000-request warm-up.  The warm-up lets malloc's
arenas and the retained async results reach their steady state: the server keeps at most
1,024 finished async jobs, and 7,000 requests hold more than 1,100 async ones."""
import concurrent.futures as cf
import time

import pytest
import requests

pytestmark = pytest.mark.server


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def one(session, base, i):
    k = i % 6
    if k == 0:
        r = session.post(base + "/v1/models/gmm-2d/samples",
                         json={"n": 2, "seed": i, "sampler": {"steps": 25}, "format": "json"})
        assert r.status_code == 200, r.text
    elif k == 1:
        r = session.post(base + "/v1/models/gmm-2d/likelihood",
                         json={"data": [[0.5, 0.1]], "rtol": 1e-3, "atol": 1e-3})
        assert r.status_code == 200, r.text
    elif k == 2:
        r = session.post(base + "/v1/models/gmm-2d/samples",
                         json={"n": 1, "seed": i, "sampler": {"steps": 25}, "async": True})
        assert r.status_code == 202, r.text
        job = r.json()["url"]
        deadline = time.monotonic() + 60
        while (s := session.get(base + job).json()["status"]) != "done" and time.monotonic() < deadline:
            time.sleep(0.002)
        assert s == "done"
    elif k == 3:
        assert session.get(base + "/v1/models").status_code == 200
    elif k == 4:
        r = session.post(base + "/v1/models/gmm-2d/samples", json={"sampler": {"predictor": "nope"}})
        assert r.status_code == 422
    else:
        r = session.post(base + "/v1/models/gmm-2d/samples", data=b"{not json",
                         headers={"Content-Type": "application/json"})
        assert r.status_code == 400


def run(base, start, count, workers=4):
    def worker(w):
        s = requests.Session()
        for i in range(start + w, start + count, workers):
            one(s, base, i)
    with cf.ThreadPoolExecutor(workers) as ex:
        list(ex.map(worker, range(workers)))


def test_resident_memory_does_not_grow_over_10000_requests(spawn):
    srv = spawn("memory")
    pid = srv.proc.pid
    run(srv.url, 0, 7000)
    before = rss_kib(pid)
    run(srv.url, 7000, 10000)
    after = rss_kib(pid)
    print(f"VmRSS after warm-up {before} KiB, after 10,000 more requests {after} KiB")
    assert after - before <= 1024, f"resident memory grew from {before} to {after} KiB"
    srv.stop()
