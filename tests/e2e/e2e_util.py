"""Helpers of the end-to-end tests of `scored serve`: the OpenAPI contract checker, an HTTP client
that checks every response against it, the server process, PNG encode/decode (zlib + struct +
numpy), Prometheus text parsing, server-sent events and raw-socket HTTP."""

import base64
import io
import json
import math
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import numpy as np
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "scored"
SPEC = REPO / "proto" / "openapi.yaml"

FM = "fmnist-gmm"      # [1, 28, 28] VP, 10 labelled classes
G2 = "gmm-2d"          # [2] VP
G2VE = "gmm-2d-ve"     # [2] VE

# Fast sampler settings for the analytic models (well under a second a request).
FAST = {"kind": "pc", "predictor": "reverse_diffusion", "corrector": "none", "steps": 50}
# A job that runs for a long time (over a minute: 10000 x 101 evaluations) unless cancelled;
# 10000 is the server's default --max-steps.
LONG = {"kind": "pc", "predictor": "reverse_diffusion", "corrector": "langevin",
        "corrector_steps": 100, "steps": 10000}

API_KEY = "e2e-secret-key-0123456789"   # the key of the --api-key-file server
# card.anomaly of fmnist-gmm-anomaly, the aux server's copy of fmnist-gmm
# (the default score is bpd; the complexity score has its own calibration under "scores")
ANOMALY_CARD = {"score": "bpd", "threshold": 17.0,
                "quantiles": {"0.9": 16.5, "0.95": 17.5, "0.99": 19.0}, "fpr": 0.05,
                "scores": {"complexity": {"threshold": 11.0, "quantiles": {"0.9": 10.5}}}}


# ---- PNG ----------------------------------------------------------------------------------------

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_encode(pixels):
    """uint8 array (H, W) gray or (H, W, C), C = 2 (gray+alpha), 3 (RGB), 4 (RGBA) -> PNG bytes."""
    pixels = np.asarray(pixels, dtype=np.uint8)
    h, w = pixels.shape[:2]
    ch = 1 if pixels.ndim == 2 else pixels.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[ch]
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (PNG_SIG + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def png_chunks(data):
    assert data[:8] == PNG_SIG, f"not a PNG: {data[:16]!r}"
    pos = 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        yield kind, body
        pos += 12 + n
        if kind == b"IEND":
            return


def png_info(data):
    """(width, height, bit_depth, color_type) from the IHDR chunk."""
    assert data[:8] == PNG_SIG, f"not a PNG: {data[:16]!r}"
    assert data[12:16] == b"IHDR"
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    return w, h, depth, ctype


def png_decode(data):
    """8-bit non-interlaced gray / gray+alpha / RGB / RGBA PNG -> uint8 array (H, W, C)."""
    idat = b""
    w = h = ctype = None
    for kind, body in png_chunks(data):
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0, f"unsupported PNG depth {depth} interlace {interlace}"
        elif kind == b"IDAT":
            idat += body
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = w * ch
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    pos = 0
    for y in range(h):
        f = raw[pos]
        line = np.frombuffer(raw[pos + 1:pos + 1 + stride], dtype=np.uint8).astype(np.int64)
        pos += 1 + stride
        cur = np.zeros(stride, dtype=np.int64)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        else:
            for i in range(stride):
                a = cur[i - ch] if i >= ch else 0
                b = prev[i]
                c = prev[i - ch] if i >= ch else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                elif f == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                else:
                    raise AssertionError(f"bad PNG filter {f}")
                cur[i] = (line[i] + pred) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, ch)


def b64(data):
    return base64.b64encode(data).decode("ascii")


def unb64(text):
    return base64.b64decode(text, validate=True)


def grid_size(n, h=28, w=28, pad=2):
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    if n == 1:
        return w, h
    return cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad


def npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def npy_load(data):
    return np.load(io.BytesIO(data), allow_pickle=False)


# ---- the contract -------------------------------------------------------------------------------

class ContractError(AssertionError):
    pass


class Contract:
    """proto/openapi.yaml: finds the operation of a request, the response object of a status, and
    validates headers and JSON bodies (JSON Schema 2020-12, $refs resolved in the whole document)."""

    METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

    def __init__(self, path=SPEC):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self._validators = {}
        self.templates = []
        for template in self.doc["paths"]:
            parts = template.strip("/").split("/") if template != "/" else []
            regex = "^/" + "/".join("[^/]+" if re.fullmatch(r"\{[^}]+\}", p) else re.escape(p)
                                    for p in parts) + "$"
            nparams = sum(1 for p in parts if p.startswith("{"))
            self.templates.append((nparams, -len(template), template, re.compile(regex)))
        self.templates.sort()

    # -- lookup
    def deref(self, obj):
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj and len(obj) == 1:
            _, obj = self.resolver.resolve(obj["$ref"])
            seen += 1
            assert seen < 20, "reference loop"
        return obj

    def match(self, path):
        """The path template of a concrete path, or None; concrete templates win."""
        path = urlsplit(path).path or "/"
        for _, _, template, regex in self.templates:
            if regex.match(path):
                return template
        return None

    def operation(self, method, path):
        template = self.match(path)
        if template is None:
            return None, None
        return template, self.doc["paths"][template].get(method.lower())

    def schema(self, name):
        return {"$ref": f"#/components/schemas/{name}"}

    def validator(self, schema):
        key = json.dumps(schema, sort_keys=True)
        v = self._validators.get(key)
        if v is None:
            v = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
            self._validators[key] = v
        return v

    def errors(self, schema, instance):
        return sorted(self.validator(schema).iter_errors(instance), key=lambda e: list(e.path))

    def validate(self, schema, instance, what="instance"):
        errs = self.errors(schema, instance)
        if errs:
            # Most telling first: a failed property also makes it "unevaluated" in 2020-12, and
            # a oneOf/anyOf failure is best explained by its closest branch.
            lines = []
            for e in sorted(errs, key=lambda e: e.validator == "unevaluatedProperties"):
                if e.context:
                    # the closest branch of a oneOf/anyOf: the one with the fewest errors
                    branches = {}
                    for sub in e.context:
                        branches.setdefault(sub.schema_path[0], []).append(sub)
                    e = jsonschema.exceptions.best_match(min(branches.values(), key=len))
                line = f"{e.message[:300]} at {list(e.absolute_path)}"
                if line not in lines:
                    lines.append(line)
            raise ContractError(
                f"{what} does not match {schema.get('$ref', 'schema')}:\n  - "
                + "\n  - ".join(lines[:5]) + f"\n  instance: {_excerpt(instance)}")

    def is_valid(self, schema, instance):
        return not self.errors(schema, instance)

    def response_object(self, method, path, status):
        template, op = self.operation(method, path)
        comps = self.doc["components"]["responses"]
        if op is None:
            # Undeclared route or method: the server answers with one of the generic errors.
            generic = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound",
                       405: "MethodNotAllowed", 413: "TooLarge", 500: "InternalError",
                       503: "ServiceUnavailable"}
            if status not in generic:
                raise ContractError(f"{method} {path} (template {template}) is not in the "
                                    f"contract and status {status} is not a generic error")
            return f"components/responses/{generic[status]}", self.deref(comps[generic[status]])
        responses = op["responses"]
        for key in (str(status), f"{status // 100}XX", "default"):
            if key in responses:
                return f"{method.upper()} {template} {key}", self.deref(responses[key])
        raise ContractError(f"{method.upper()} {template}: status {status} is not declared")

    def check(self, method, path, status, headers, body, request_json=None):
        """Checks one response; returns the parsed JSON body (or None for other content)."""
        where, resp = self.response_object(method, path, status)
        lower = {k.lower(): v for k, v in headers.items()}
        for name, h in (resp.get("headers") or {}).items():
            h = self.deref(h)
            value = lower.get(name.lower())
            if value is None:
                if h.get("required"):
                    raise ContractError(f"{where}: required header {name} missing "
                                        f"(headers: {dict(headers)})")
                continue
            sch = self.deref(h.get("schema", {}))
            typ = sch.get("type")
            try:
                inst = int(value) if typ == "integer" else float(value) if typ == "number" else value
            except ValueError:
                raise ContractError(f"{where}: header {name}: {value!r} is not a {typ}")
            self.validate(h.get("schema", {}), inst, f"{where} header {name}")
        content = resp.get("content")
        if not content:
            return None
        ctype = (lower.get("content-type") or "").split(";")[0].strip().lower()
        media = content.get(ctype)
        if media is None and "*/*" in content:
            media = content["*/*"]
        if media is None:
            raise ContractError(f"{where}: Content-Type {ctype!r} not in {list(content)}; "
                                f"body {_excerpt(body)}")
        parsed = None
        if ctype == "application/json":
            try:
                parsed = json.loads(body)
            except ValueError as e:
                raise ContractError(f"{where}: invalid JSON body ({e}): {_excerpt(body)}")
            if "schema" in media:
                self.validate(media["schema"], parsed, f"{where} body")
        elif ctype == "image/png":
            assert body[:8] == PNG_SIG, f"{where}: image/png body is not a PNG"
        if 200 <= status < 300 and request_json is not None:
            _, op = self.operation(method, path)
            rb = self.deref((op or {}).get("requestBody") or {})
            jmedia = (rb.get("content") or {}).get("application/json")
            if jmedia and "schema" in jmedia:
                self.validate(jmedia["schema"], request_json,
                              f"request of {method.upper()} {path} (answered {status})")
        return parsed


def _excerpt(x, n=400):
    if isinstance(x, (bytes, bytearray)):
        try:
            x = x.decode()
        except UnicodeDecodeError:
            return repr(bytes(x[:n]))
    s = x if isinstance(x, str) else json.dumps(x)
    return s if len(s) <= n else s[:n] + "..."


# ---- the HTTP client ----------------------------------------------------------------------------

class Api:
    """requests, with every answer checked against the contract (r.doc is the parsed JSON)."""

    def __init__(self, base, contract, headers=None):
        self.base = base.rstrip("/")
        self.contract = contract
        self.headers = dict(headers or {})
        self._local = threading.local()

    @property
    def session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def with_headers(self, headers):
        return Api(self.base, self.contract, {**self.headers, **headers})

    def request(self, method, path, *, expect=None, check=True, json=None, timeout=60,
                stream=False, headers=None, **kw):
        h = {**self.headers, **(headers or {})}
        r = self.session.request(method, self.base + path, json=json, headers=h, timeout=timeout,
                                 stream=stream, **kw)
        r.doc = None
        if check:
            body = b"" if stream else r.content
            if stream:
                # The body is read by the caller: check status and headers only.
                where, resp = self.contract.response_object(method, path, r.status_code)
                for name, hd in (resp.get("headers") or {}).items():
                    hd = self.contract.deref(hd)
                    assert not hd.get("required") or name in r.headers, \
                        f"{where}: required header {name} missing"
            else:
                r.doc = self.contract.check(method, path, r.status_code, r.headers, body,
                                            request_json=json)
        if expect is not None:
            exp = expect if isinstance(expect, (tuple, list, set)) else (expect,)
            assert r.status_code in exp, (
                f"{method} {path}: expected {expect}, got {r.status_code}: "
                f"{'<stream>' if stream else _excerpt(r.content)}")
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)


def assert_error(r, status, code=None):
    """r answered `status` with the JSON error body (already checked against the contract)."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {_excerpt(r.content)}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        codes = code if isinstance(code, (tuple, list, set)) else (code,)
        assert body["error"]["code"] in codes, f"expected code {code}: {body}"
    assert body["error"]["message"].strip(), body
    return body["error"]


def wait_until(fn, timeout=10.0, interval=0.05, what="condition"):
    """Calls fn until it returns something other than None or False (a requests Response
    counts even when its status makes it falsy); returns that."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_job(api, job_id, statuses=("done", "failed", "cancelled"), timeout=30.0):
    """Polls GET /v1/jobs/{id} until its status is in `statuses`; returns the job."""
    last = {}

    def poll():
        r = api.get(f"/v1/jobs/{job_id}", expect=200)
        last["job"] = r.doc
        return r.doc if r.doc["status"] in statuses else None

    try:
        return wait_until(poll, timeout, 0.03, f"job {job_id} to reach {statuses}")
    except AssertionError as e:
        raise AssertionError(f"{e}; last state {_excerpt(last.get('job'))}")


def submit(api, path, body, **kw):
    """An asynchronous POST; returns the 202 body."""
    r = api.post(path, json={**body, "async": True}, expect=202, **kw)
    return r.doc


def cancel_quietly(api, job_id):
    try:
        api.delete(f"/v1/jobs/{job_id}", check=False, timeout=10)
    except requests.RequestException:
        pass


# ---- metrics ------------------------------------------------------------------------------------

_METRIC_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?'
    r'\s+(\S+)(\s+-?\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> [(name, {labels}, value)]; asserts every line parses."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            if line.startswith("# TYPE"):
                parts = line.split()
                assert len(parts) == 4 and parts[3] in (
                    "counter", "gauge", "histogram", "summary", "untyped"), line
            continue
        m = _METRIC_LINE.match(line)
        assert m, f"metrics line does not parse: {line!r}"
        labels = dict(_LABEL.findall(m.group(2) or ""))
        value = float(m.group(3))  # accepts +Inf, -Inf, NaN
        out.append((m.group(1), labels, value))
    return out


def metric_sum(samples, name, **labels):
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == str(x) for k, x in labels.items()))


def metrics(api):
    r = api.get("/metrics", expect=200)
    return parse_metrics(r.text)


def running_jobs(api):
    return metric_sum(metrics(api), "scored_running_jobs")


# ---- server-sent events -------------------------------------------------------------------------

def iter_sse(resp):
    """(event, data) pairs of a text/event-stream response opened with stream=True."""
    buf = b""
    event, data = None, []
    for chunk in resp.iter_content(chunk_size=None):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            assert b"\0" not in line, f"NUL byte in the event stream: {line[:80]!r}"
            line = line.rstrip(b"\r").decode("utf-8")
            if line == "":
                if data or event:
                    yield event or "message", "\n".join(data)
                event, data = None, []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    if data:
        yield event or "message", "\n".join(data)


# ---- raw HTTP -----------------------------------------------------------------------------------

def read_http_response(sock):
    """Reads one HTTP/1.1 response from a socket: (status, {lower-case headers}, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before the headers: {buf[:200]!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if status in (100, 204, 304) or 100 <= status < 200:
        return status, headers, rest
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:n]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                chunk = sock.recv(65536)
                if not chunk:
                    return status, headers, body
                rest += chunk
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    return status, headers, body + rest
                rest += chunk
            if size == 0:
                return status, headers, body
            body += rest[:size]
            rest = rest[size + 2:]
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return status, headers, rest
        rest += chunk


def raw_http(port, payload, timeout=15.0):
    """Sends raw bytes, returns (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_http_response(s)


# ---- the server process -------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `scored serve` process on a free port (cwd = the repository root)."""

    def __init__(self, name, logdir, models="models", static="static", args=(), use_env=False,
                 api_key=None):
        self.name = name
        self.logdir = Path(logdir)
        self.models = str(models)
        self.static = str(static)
        self.args = [str(a) for a in args]
        self.use_env = use_env
        self.api_key = api_key
        self.proc = None
        self.port = None
        self.stopped = False
        self.log_path = self.logdir / f"server-{name}.log"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def command(self, port):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCORED_")}
        if self.use_env:
            env.update(SCORED_MODELS=self.models, SCORED_HOST="127.0.0.1",
                       SCORED_PORT=str(port), SCORED_STATIC=self.static)
            return [str(BIN), "serve", *self.args], env
        return [str(BIN), "serve", "--models", self.models, "--host", "127.0.0.1",
                "--port", str(port), "--static", self.static, *self.args], env

    def start(self, timeout=30.0):
        for attempt in range(3):
            self.port = free_port()
            cmd, env = self.command(self.port)
            self.log = open(self.log_path, "ab")
            self.log.write(f"$ {' '.join(cmd)}\n".encode())
            self.log.flush()
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self.log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    r = requests.get(self.url + "/readyz", timeout=1)
                    if r.status_code == 200:
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError(f"server {self.name} not ready within {timeout} s:\n"
                                     f"{self.log_tail()}")
            if "in use" not in self.log_tail().lower():
                raise AssertionError(f"server {self.name} exited with {self.proc.returncode} "
                                     f"before it was ready:\n{self.log_tail()}")
        raise AssertionError(f"server {self.name}: no free port after 3 tries")

    def log_tail(self, n=3000):
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=15.0):
        """SIGTERM; returns the exit status, or None when it did not exit in time (then killed)."""
        if self.proc is None or self.stopped:
            return self.proc.returncode if self.proc else None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        self.log.close()
        return rc

    def kill(self):
        self.stopped = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def alive(self):
        return self.proc is not None and not self.stopped and self.proc.poll() is None


# ---- the command line, for reference results ------------------------------------------------------

def cli(*args, timeout=120):
    """Runs ./scored with args; returns stderr (the one-line summary). Fails on a non-zero exit."""
    # one OpenBLAS thread, as the server's evaluation threads use (and robust on a busy machine)
    r = subprocess.run([str(BIN), *map(str, args)], cwd=REPO, capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert r.returncode == 0, f"./scored {' '.join(map(str, args))}: {r.stderr}"
    return r.stderr


def cli_sampler_args(sampler):
    """The CLI options of a JSON Sampler."""
    names = {"kind": "--sampler", "predictor": "--predictor", "corrector": "--corrector",
             "snr": "--snr", "corrector_steps": "--corrector-steps", "steps": "--steps",
             "solver": "--solver", "rtol": "--rtol", "atol": "--atol", "eps": "--eps"}
    out = []
    for k, v in sampler.items():
        if k == "denoise":
            if not v:
                out.append("--no-denoise")
        else:
            out += [names[k], v]
    return out


def summary_value(stderr, key):
    m = re.search(rf"\b{key}=(\S+)", stderr)
    assert m, f"{key} not in {stderr!r}"
    return m.group(1)
