"""tiny-ota: a small device-poll dialect, written in Python.

Its vendor's devices ask whether an update is available for the version they run, download
it, and report how the job went. The whole API:

    GET  /tiny/v1/devices/{product}/{sn}/update?version=1.0[&module=mcu|wifi]
         -> {"code":0,"update":null,"poll_secs":300}
         -> {"code":0,"update":{"job":12,"version":"1.1","url":"…","sha256":"…","md5":"…",
             "size":1234},"poll_secs":300}
    POST /tiny/v1/jobs/{job}   {"state":"downloading|installing|succeeded|failed",
                                "code":0,"text":"…","version":"1.1"}
         -> {"code":0,"job":12,"state":"succeeded"}

Every call carries a tenant API key in `X-API-Key`. Errors are `{"code":<5 digits>,
"message":"…"}` with the HTTP status in the code's first three digits. Numbers may come as
JSON numbers or strings (`"job":"12"`, `"code":"0"`): devices send both.

Built with `componentize-py` against `wit/v0.2` (see README.md); the suite builds it and
drives it over HTTP in `tests/e2e/python_example.rs`.
"""

import json
import re
import traceback
from urllib.parse import parse_qs

import wit_world
from componentize_py_types import Err
from wit_world.imports import auth, blobs, log, rollout, types
from wit_world.imports.types import Manifest, Request, Response, Route

POLL_SECS = 300

# Where the vendor's codes come from: the HTTP status, then two digits.
CODES = {
    400: 40001,
    401: 40101,
    403: 40301,
    404: 40401,
    405: 40501,
    409: 40901,
    413: 41301,
    429: 42901,
    500: 50001,
    503: 50301,
    504: 50401,
}

STATES = {
    "downloading": rollout.JobState.DOWNLOADING,
    "installing": rollout.JobState.INSTALLING,
    "succeeded": rollout.JobState.SUCCEEDED,
    "failed": rollout.JobState.FAILED,
}

MODULES = {"mcu": types.Module.MCU, "wifi": types.Module.WIFI}


class Refused(Exception):
    """A request this dialect refuses: an HTTP status and a message for the device."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


HOST_ERRORS = {
    types.HostError_Unauthenticated: 401,
    types.HostError_Forbidden: 403,
    types.HostError_NotFound: 404,
    types.HostError_Conflict: 409,
    types.HostError_Invalid: 400,
    types.HostError_Unsupported: 500,
    types.HostError_Internal: 500,
}


def answer(status, value, headers=()):
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, [("content-type", "application/json")] + list(headers), body)


def envelope(status, message, headers=()):
    return answer(status, {"code": CODES.get(status, 50001), "message": message}, headers)


def whole_number(value, name):
    """A JSON number or a string of digits, as devices send either."""
    if isinstance(value, bool):
        raise Refused(400, f"{name} must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
        return int(value.strip())
    raise Refused(400, f"{name} must be a whole number")


def authenticate(req):
    key = next((v for k, v in req.headers if k == "x-api-key"), "")
    if not key:
        raise Refused(401, "X-API-Key is required")
    auth.verify_api_key(key)


def update(req, product, sn):
    authenticate(req)
    query = parse_qs(req.query, keep_blank_values=True)
    version = (query.get("version") or [""])[0].strip()
    if not version:
        raise Refused(400, "version is required")
    module_name = (query.get("module") or ["mcu"])[0].strip().lower()
    if module_name not in MODULES:
        raise Refused(400, "module is mcu or wifi")
    offer = rollout.check_in(product, sn, MODULES[module_name], 0, version)
    if offer is None:
        return answer(200, {"code": 0, "update": None, "poll_secs": POLL_SECS})
    release = offer.release
    if release.blob_id is not None:
        url = blobs.download_url(release.blob_id, None)
    else:
        url = release.external_url or ""
    return answer(
        200,
        {
            "code": 0,
            "update": {
                "job": offer.job.id,
                "version": release.version,
                "url": url,
                "sha256": release.blob_id,
                "md5": release.md5,
                "size": release.size,
            },
            "poll_secs": POLL_SECS,
        },
    )


def report(req, job):
    authenticate(req)
    job_id = whole_number(job, "job")
    try:
        body = json.loads(req.body or b"{}")
    except ValueError:
        raise Refused(400, "the body is not JSON")
    if not isinstance(body, dict):
        raise Refused(400, "the body is a JSON object")
    state = STATES.get(str(body.get("state", "")).lower())
    if state is None:
        raise Refused(400, "state is downloading, installing, succeeded or failed")
    code = body.get("code")
    code = None if code is None else whole_number(code, "code")
    text = body.get("text")
    text = "" if text is None else str(text)
    version = body.get("version")
    version = None if version is None else str(version)
    done = rollout.report_job(job_id, state, code, text, version)
    return answer(200, {"code": 0, "job": done.id, "state": done.state.name.lower()})


# (method, pattern, handler): `{name}` matches one path segment.
ROUTES = [
    ("GET", "/tiny/v1/devices/{product}/{sn}/update", update),
    ("POST", "/tiny/v1/jobs/{job}", report),
]


def compile_pattern(pattern):
    parts = [
        f"(?P<{s[1:-1]}>[^/]+)" if s.startswith("{") else re.escape(s)
        for s in pattern.split("/")
    ]
    return re.compile("/".join(parts) + "$")


MATCHERS = [(m, compile_pattern(p), h) for m, p, h in ROUTES]


class WitWorld(wit_world.WitWorld):
    def manifest(self) -> Manifest:
        routes = [Route(m, p) for m, p, _ in ROUTES]
        # Every other path under /tiny/ gets the vendor's 404/405, not the host's.
        routes.append(Route("*", "/tiny/{*rest}"))
        return Manifest("tiny-ota", "1.0.0", "TinyOTA", "a small device-poll API, in Python", routes)

    def handle(self, req: Request) -> Response:
        allow = []
        for method, pattern, handler in MATCHERS:
            found = pattern.match(req.path)
            if not found:
                continue
            if method != req.method:
                allow.append(method)
                continue
            try:
                return handler(req, **found.groupdict())
            except Refused as e:
                return envelope(e.status, str(e))
            except Err as e:
                return envelope(HOST_ERRORS.get(type(e.value), 500), e.value.value)
            except Exception:
                log.log(log.Level.ERROR, traceback.format_exc())
                return envelope(500, "the server failed; try again later")
        if allow:
            return envelope(405, "method not allowed", [("allow", ", ".join(allow))])
        return envelope(404, "no such API")

    def refuse(self, req: Request, reason: types.Refusal) -> Response:
        return envelope(413, "request body too large")

    def fail(self, req: Request, failure: types.Failure) -> Response:
        headers = []
        if failure.retry_after_secs is not None:
            headers.append(("retry-after", str(failure.retry_after_secs)))
        return envelope(failure.status, failure.message, headers)
