"""Fixtures of the end-to-end tests: the real `./scored serve` binary on free ports.

Servers (session-scoped unless said otherwise; each is stopped with SIGTERM at the end and must
exit with status 0 within 15 s):
  server         the bundled models (models/), --static static
  auth_server    the same with --api-key-file (key API_KEY)
  limits_server  --queue 2 --max-batch 1 --max-body-mb 1 (queueing, 429, body limit)
  aux_server     a temporary models directory: the bundled models plus a 3-channel image model
                 (rgb-gmm), a sub-VP copy of gmm-2d (gmm-2d-subvp) and a copy of fmnist-gmm whose
                 card has an anomaly section (fmnist-gmm-anomaly); a temporary static directory
  spawn          (function scope) a factory for servers a test stops itself (shutdown, reload)

Tests marked `server` are skipped, with the reason, while `./scored serve` does not exist yet.
After every server test each live server must still answer /healthz with 200."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from e2e_util import (ANOMALY_CARD, API_KEY, BIN, REPO, Api, Contract, Server, png_encode)

_unavailable = []


def serve_unavailable():
    """Why `scored serve` cannot be tested (None when it can)."""
    if not _unavailable:
        reason = None
        if not BIN.exists():
            reason = "./scored is not built (run make)"
        else:
            try:
                r = subprocess.run([str(BIN), "serve", "--help"], cwd=REPO, capture_output=True,
                                   text=True, timeout=10)
                out = (r.stdout + r.stderr).lower()
                if "unknown command" in out:
                    reason = ("`scored serve` is not implemented yet (./scored serve: "
                              f"{(r.stderr or r.stdout).strip().splitlines()[0]})")
            except subprocess.TimeoutExpired:
                reason = None  # a server that ignores --help: try it for real
        _unavailable.append(reason)
    return _unavailable[0]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "server: end-to-end test of `scored serve` (skipped until the server exists)")


def pytest_collection_modifyitems(config, items):
    reason = serve_unavailable()
    if not reason:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "server" in item.keywords:
            item.add_marker(skip)


# ---- servers --------------------------------------------------------------------------------------

_live = []


def _session_server(request, workdir, name, **kw):
    srv = Server(name, workdir, **kw)
    srv.start()
    _live.append(srv)

    def finish():
        if srv in _live:
            _live.remove(srv)
        if srv.stopped:
            return
        rc = srv.stop(15)
        assert rc == 0, (f"server {name}: exit status {rc} after SIGTERM (None = still running "
                         f"after 15 s, killed):\n{srv.log_tail()}")
    request.addfinalizer(finish)
    return srv


@pytest.fixture(scope="session")
def contract():
    return Contract()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def server(request, workdir):
    return _session_server(request, workdir, "main")


@pytest.fixture(scope="session")
def api(server, contract):
    return Api(server.url, contract)


@pytest.fixture(scope="session")
def auth_server(request, workdir):
    keyfile = workdir / "api-keys"
    keyfile.write_text(f"# keys of the e2e tests\n\n{API_KEY}\n")
    return _session_server(request, workdir, "auth", args=["--api-key-file", keyfile])


@pytest.fixture(scope="session")
def auth_api(auth_server, contract):
    return Api(auth_server.url, contract)


@pytest.fixture(scope="session")
def limits_server(request, workdir):
    return _session_server(request, workdir, "limits",
                           args=["--queue", 2, "--max-batch", 1, "--max-body-mb", 1])


@pytest.fixture(scope="session")
def limits_api(limits_server, contract):
    return Api(limits_server.url, contract)


def write_rgb_model(path):
    """A 3-channel 8x8 image model: two isotropic Gaussians, a reddish and a bluish one."""
    red = np.zeros((3, 8, 8))
    red[0], red[1], red[2] = 0.6, -0.4, -0.5
    blue = np.zeros((3, 8, 8))
    blue[0], blue[1], blue[2] = -0.5, -0.2, 0.7
    model = {"kind": "gmm", "name": "rgb-gmm", "shape": [3, 8, 8],
             "sde": {"type": "vp", "beta_min": 0.1, "beta_max": 20, "N": 1000},
             "centered": True, "weights": [0.5, 0.5],
             "means": [red.ravel().tolist(), blue.ravel().tolist()], "stds": [0.1, 0.1],
             "labels": ["reddish", "bluish"],
             "card": {"description": "e2e test model: two colours on 8x8 images"}}
    path.write_text(json.dumps(model))


def write_subvp_model(path, name="gmm-2d-subvp"):
    model = json.loads((REPO / "models" / "gmm-2d.json").read_text())
    model["name"] = name
    model["sde"]["type"] = "subvp"
    model["card"] = {"description": "e2e test model: gmm-2d under a sub-VP SDE"}
    path.write_text(json.dumps(model))


@pytest.fixture(scope="session")
def aux_models(workdir):
    d = workdir / "aux-models"
    d.mkdir()
    for f in ("gmm-2d.json", "gmm-2d-ve.json", "fmnist-gmm.json"):
        shutil.copy(REPO / "models" / f, d / f)
    write_rgb_model(d / "rgb-gmm.json")
    write_subvp_model(d / "gmm-2d-subvp.json")
    fm = json.loads((REPO / "models" / "fmnist-gmm.json").read_text())
    fm["name"] = "fmnist-gmm-anomaly"
    fm["card"]["anomaly"] = ANOMALY_CARD
    (d / "fmnist-gmm-anomaly.json").write_text(json.dumps(fm))
    return d


@pytest.fixture(scope="session")
def aux_static(workdir):
    d = workdir / "aux-static"
    d.mkdir()
    (d / "index.html").write_text("<!doctype html><title>scored e2e</title><p>hello</p>\n")
    (d / "app.js").write_text("console.log('scored e2e');\n")
    (d / ".secret").write_text("not to be served\n")
    return d


@pytest.fixture(scope="session")
def aux_server(request, workdir, aux_models, aux_static):
    return _session_server(request, workdir, "aux", models=aux_models, static=aux_static)


@pytest.fixture(scope="session")
def aux_api(aux_server, contract):
    return Api(aux_server.url, contract)


@pytest.fixture
def spawn(workdir, request):
    """spawn(name, **Server kwargs) -> a started Server the test stops itself (killed at the end
    if it did not)."""
    started = []

    def make(name, **kw):
        srv = Server(f"{name}-{request.node.name}"[:80], workdir, **kw)
        srv.start()
        started.append(srv)
        _live.append(srv)
        return srv

    yield make
    for srv in started:
        if srv in _live:
            _live.remove(srv)
        srv.kill()


@pytest.fixture(autouse=True)
def healthz_still_answers(request, contract):
    """After every server test (abuse cases included) each live server answers /healthz 200."""
    yield
    if "server" not in request.keywords or serve_unavailable():
        return
    for srv in list(_live):
        if not srv.alive():
            continue
        r = Api(srv.url, contract).get("/healthz", timeout=10)
        assert r.status_code == 200 and r.json() == {"status": "ok"}, \
            f"server {srv.name}: /healthz answered {r.status_code} after {request.node.name}"


# ---- inputs ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def fmnist_png(workdir):
    """A 28x28 gray PNG drawn by the CLI from fmnist-gmm (seed 3)."""
    out = workdir / "fmnist-seed3.png"
    r = subprocess.run([str(BIN), "sample", "--model", "fmnist-gmm", "--n", "1", "--seed", "3",
                        "--steps", "100", "--out", str(out)], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


@pytest.fixture(scope="session")
def half_mask_png():
    """28x28 mask: left half white (keep), right half black (generate)."""
    m = np.zeros((28, 28), dtype=np.uint8)
    m[:, :14] = 255
    return png_encode(m)


@pytest.fixture(scope="session")
def rgb_png():
    """An 8x8 RGB image for rgb-gmm."""
    rng = np.random.default_rng(5)
    return png_encode(rng.integers(40, 216, size=(8, 8, 3), dtype=np.uint8))
