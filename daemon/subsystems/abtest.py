"""A/B analysis over the API: the same computations as ``opsctl abtest``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from opsctl import abtest_requests
from opsctl.errors import UsageError
from opsctld.api import Endpoint, read_json_body
from opsctld.main import Subsystem


def _number(body: dict[str, Any], key: str, default: float | None = None) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{key!r} must be a number")
    return float(value)


def _counts(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and {"successes", "total"} <= set(value):
        return f"{value['successes']}/{value['total']}"
    raise UsageError(f"{key!r} must be 'SUCCESSES/TOTAL' or {{successes, total}}")


async def ztest(request: Request) -> Response:
    body = await read_json_body(request)
    return JSONResponse(abtest_requests.ztest(
        _counts(body, "control"), _counts(body, "treatment"), alpha=_number(body, "alpha", 0.05),
        alternative=str(body.get("alternative", "two-sided"))))


async def sample_size(request: Request) -> Response:
    body = await read_json_body(request)
    return JSONResponse(abtest_requests.sample_size(
        _number(body, "baseline"), _number(body, "mde"), alpha=_number(body, "alpha", 0.05),
        power=_number(body, "power", 0.8), alternative=str(body.get("alternative", "two-sided"))))


async def sequential(request: Request) -> Response:
    body = await read_json_body(request)
    raw = body.get("looks")
    if not isinstance(raw, list):
        raise UsageError("'looks' must be a list of 'CS/CT:TS/TT' strings")
    looks = [abtest_requests.parse_look(str(item), i) for i, item in enumerate(raw)]
    return JSONResponse(abtest_requests.sequential(
        looks, alpha=_number(body, "alpha", 0.05), tau=_number(body, "tau", 0.05),
        min_samples=int(_number(body, "min_samples", 100))))


_COUNT = {"type": "integer", "minimum": 0, "maximum": 10**15}
_COUNTS = {"anyOf": [{"type": "string", "pattern": "^[0-9]{1,15}/[0-9]{1,15}$"},
                     {"type": "object", "required": ["successes", "total"], "additionalProperties": False,
                      "properties": {"successes": _COUNT, "total": _COUNT}}],
           "description": "'SUCCESSES/TOTAL' or {successes, total}"}
_RATE = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}
_ALTERNATIVE = {"enum": ["two-sided", "larger", "smaller"]}

SUBSYSTEM = Subsystem(
    name="abtest",
    endpoints=[
        Endpoint("POST", "/v1/abtest/ztest", ztest, "Two-proportion z-test with CI and relative lift",
                 request_body={"type": "object", "required": ["control", "treatment"], "additionalProperties": False,
                               "properties": {"control": _COUNTS, "treatment": _COUNTS, "alpha": _RATE,
                                              "alternative": _ALTERNATIVE}},
                 response={"type": "object", "required": ["z", "p_value", "ci_low", "ci_high", "significant"]}),
        Endpoint("POST", "/v1/abtest/sample-size", sample_size, "Users per group for a relative change",
                 request_body={"type": "object", "required": ["baseline", "mde"], "additionalProperties": False,
                               "properties": {"baseline": _RATE, "mde": {"type": "number"}, "alpha": _RATE,
                                              "power": _RATE, "alternative": _ALTERNATIVE}},
                 response={"type": "object", "required": ["per_group", "total"]}),
        Endpoint("POST", "/v1/abtest/sequential", sequential, "Always-valid sequential test over cumulative looks",
                 request_body={"type": "object", "required": ["looks"], "additionalProperties": False,
                               "properties": {"looks": {"type": "array", "minItems": 1, "maxItems": 10_000, "items": {
                                   "type": "string", "pattern": "^[0-9]{1,15}/[0-9]{1,15}:[0-9]{1,15}/[0-9]{1,15}$"}},
                                              "alpha": _RATE, "tau": {"type": "number", "exclusiveMinimum": 0},
                                              "min_samples": {"type": "integer", "minimum": 1, "maximum": 10**12}}},
                 response={"type": "object", "required": ["final", "looks"]}),
    ],
)
