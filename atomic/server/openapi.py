"""``GET /openapi.json``: the OpenAPI 3.1 document, generated from the contract's Structs.

Components come from :mod:`atomic.contract` through msgspec's ``schema_components``, so
a field exists in the document exactly when the server decodes or sends it. This module
only adds what a type cannot say: the routes, their parameters, every status each can
answer, the headers, and the links the stateful fuzzer follows (a job's id from the 202
to its GET, DELETE and artifact). ``language`` lists the languages this server's sandbox
image offers now, so a request the document calls valid is one the server runs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import msgspec

from ..contract import (
    EXPORT_FORMATS,
    JOB_STATES,
    LANGUAGE_NAMES,
    AcceptedEvent,
    BatchRequest,
    CancelMessage,
    DoneEvent,
    ErrorBody,
    ErrorEvent,
    ExecuteRequest,
    ExecutionResult,
    FileEvent,
    FollowMessage,
    GenerateRequest,
    JobDocument,
    JobPage,
    LanguageList,
    OutputEvent,
    StateEvent,
    Status,
    TokenEvent,
)
from ..contract.documents import BatchError, Health
from ..contract.types import Cursor

REF = "#/components/schemas/{name}"
EVENTS = (AcceptedEvent, StateEvent, TokenEvent, FileEvent, OutputEvent, DoneEvent, ErrorEvent)
TYPES = (
    GenerateRequest, ExecuteRequest, BatchRequest, JobDocument, JobPage, ExecutionResult, BatchError, Status,
    LanguageList, ErrorBody, Health, FollowMessage, CancelMessage, *EVENTS,
)

ERRORS = {
    400: "invalid_json: the body is not JSON",
    401: "unauthorized: a valid API key is required",
    404: "not found (job_not_found, artifact_not_found)",
    409: "job_finished: the job had already ended",
    413: "payload_too_large: the body is larger than the server accepts",
    415: "unsupported_media_type: the body must be application/json",
    422: "validation_error (the message names the field) or language_unavailable",
    426: "upgrade_required: this route is a WebSocket",
    429: "rate_limited: past ATOMIC_RATE_LIMIT for this API key or address; or queue_full: the queue is at "
         "capacity (see Retry-After)",
    503: "shutting_down, or the sandbox or agent is unavailable",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}, **(headers or {})},
        "content": {"application/json": {"schema": schema}},
    }
    return out


def _errors(*codes: int) -> dict[str, Any]:
    out = {}
    if 401 in codes and 429 not in codes:
        codes = (*codes, 429)  # every route a key guards is also rate limited (when a limit is set)
    for code in sorted(codes):
        headers = {}
        if code == 429:
            headers["Retry-After"] = {"description": "seconds until a request fits (rate_limited), or until a "
                                                     "queue slot is likely free (queue_full)",
                                      "schema": {"type": "integer", "minimum": 1}, "required": True}
        out[str(code)] = _json(_ref("ErrorBody"), ERRORS[code], headers)
    return out


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


# A run that could not run at all is an error object in its place (two Structs: msgspec
# names no untagged union of them, so the list is composed here).
BATCH_RESULT = {"type": "object", "required": ["results"], "properties": {"results": {
    "type": "array", "items": {"anyOf": [_ref("ExecutionResult"), _ref("BatchError")]}}}}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
JOB_LINKS = {
    "GetJob": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/id"}},
    "CancelJob": {"operationId": "cancelJob", "parameters": {"job_id": "$response.body#/id"}},
    "GetArtifact": {"operationId": "getArtifact", "parameters": {"job_id": "$response.body#/id"}},
}


def _paths() -> dict[str, Any]:
    job = _ref("JobDocument")
    location = {"Location": {"description": "the job's URL", "schema": {"type": "string"}, "required": True}}
    accepted = _json(job, "accepted: the job as queued", location)
    finished = _json(job, "the finished job (wait)", location)
    accepted["links"] = finished["links"] = JOB_LINKS
    return {
        "/health": {"get": {
            "operationId": "health", "summary": "Liveness; touches no dependency", "security": [],
            "responses": {"200": _json(_ref("Health"), "ok")}}},
        "/api/status": {"get": {
            "operationId": "status", "summary": "What an operator needs to know",
            "responses": {"200": _json(_ref("Status"), "status"), **_errors(401)}}},
        "/api/languages": {"get": {
            "operationId": "languages", "summary": "The languages Atomic knows, and which the sandbox offers",
            "responses": {"200": _json(_ref("LanguageList"), "languages"), **_errors(401)}}},
        "/api/metrics": {"get": {
            "operationId": "metricsJson", "summary": "Metrics as JSON",
            "responses": {"200": _json({"type": "object"}, "metrics"), **_errors(401)}}},
        "/metrics": {"get": {
            "operationId": "metricsPrometheus", "summary": "Metrics in Prometheus text format",
            "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}},
                                  "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}}},
                          **_errors(401)}}},
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "the OpenAPI document"), **_errors(401)}}},
        "/api/generate": {"post": {
            "operationId": "generate", "summary": "Submit a prompt: a job that generates, runs and packages a program",
            "parameters": [_query("wait", {"type": "boolean"}, "answer only once the job has ended")],
            "requestBody": _body("GenerateRequest"),
            "responses": {"202": accepted, "200": finished, **_errors(400, 401, 413, 415, 422, 429, 503)}}},
        "/api/jobs": {"get": {
            "operationId": "listJobs", "summary": "Jobs, newest first, a page at a time",
            "parameters": [
                _query("state", {"type": "string", "enum": list(JOB_STATES)}, "only jobs in this state"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
                _query("cursor", msgspec.json.schema(Cursor), "the `next` of the previous page"),
            ],
            "responses": {"200": _json(_ref("JobPage"), "a page of jobs"), **_errors(401, 422)}}},
        "/api/jobs/{job_id}": {
            "get": {"operationId": "getJob", "summary": "A job's document", "parameters": [JOB_ID],
                    "responses": {"200": _json(job, "the job"), **_errors(401, 404)}},
            "delete": {"operationId": "cancelJob",
                       "summary": "Cancel a queued or running job; the job is kept, in CANCELLED",
                       "description": "Cancels the job (its sandbox is killed) and answers its document in "
                                      "CANCELLED. The job is not deleted: GET still answers it afterwards.",
                       "parameters": [JOB_ID],
                       "responses": {"200": _json(job, "the cancelled job"), **_errors(401, 404, 409)}},
        },
        "/api/jobs/{job_id}/artifact": {"get": {
            "operationId": "getArtifact", "summary": "Download a job's archive",
            "parameters": [JOB_ID, _query("format", {"type": "string", "enum": list(EXPORT_FORMATS),
                                                     "default": "zip"}, "archive format")],
            "responses": {"200": {"description": "the archive, with a content-disposition filename",
                                  "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}},
                                  "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}},
                                              "application/gzip": {"schema": {"type": "string",
                                                                              "format": "binary"}}}},
                          **_errors(401, 404, 422)}}},
        "/api/execute": {"post": {
            "operationId": "execute", "summary": "Run code in the sandbox",
            "requestBody": _body("ExecuteRequest"),
            "responses": {"200": _json(_ref("ExecutionResult"), "the run's result"),
                          **_errors(400, 401, 413, 415, 422, 429, 503)}}},
        "/api/execute/batch": {"post": {
            "operationId": "executeBatch", "summary": "Run up to 64 programs; results in order",
            "requestBody": _body("BatchRequest"),
            "responses": {"200": _json(BATCH_RESULT, "one result (or error) per run, in order"),
                          **_errors(400, 401, 413, 415, 422, 429, 503)}}},
        "/ws/stream": {"get": {
            "operationId": "stream", "summary": "WebSocket: start or follow a job and receive its events",
            "description": (
                "A WebSocket (GET with `Upgrade: websocket`). The client's first message is a "
                "GenerateRequest (starts a job) or a FollowMessage; later it may send a CancelMessage. "
                "The server sends ServerEvent frames (`x-server-events`), each with `job_id` and a `seq` "
                "that rises by one, then closes with 1000 (1008 after an `error` event). "
                "Without the upgrade the answer is 426 `upgrade_required`."),
            "parameters": [_query("job_id", {"type": "string"}, "follow this job"),
                           _query("token", {"type": "string"}, "an API key (instead of the header)")],
            "x-client-messages": {"oneOf": [_ref("GenerateRequest"), _ref("FollowMessage"), _ref("CancelMessage")]},
            "x-server-events": {"oneOf": [_ref(e.__name__) for e in EVENTS]},
            "responses": {"101": {"description": "switching protocols: the WebSocket"}, **_errors(401, 426)}}},
    }


@functools.cache
def _components() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(TYPES, ref_template=REF)
    return schemas


def _offer(node: Any, languages: list[str]) -> Any:
    """The schemas with every language enum narrowed to what this server offers, and
    whole numbers (floats that are multiples of 1, see ``contract.types.whole``) called
    integers, which is what JSON Schema means by one."""
    if isinstance(node, dict):
        if node.get("enum") == list(LANGUAGE_NAMES):
            return {**node, "enum": languages}
        if node.get("type") == "number" and node.get("multipleOf") == 1:
            node = {k: v for k, v in node.items() if k != "multipleOf"} | {"type": "integer"}
        return {k: _offer(v, languages) for k, v in node.items()}
    if isinstance(node, list):
        return [_offer(v, languages) for v in node]
    return node


@functools.lru_cache(maxsize=8)
def _document(version: str, languages: tuple[str, ...]) -> bytes:
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "Atomic", "version": version,
                 "description": "A prompt in, a tested, packaged program out. Every error answers "
                                "`{\"error\": {\"code\", \"message\"}}`."},
        "components": {
            "schemas": _offer(_components(), list(languages)),
            "headers": {"RequestId": {"description": "the client's X-Request-ID, echoed, or a new one",
                                      "schema": {"type": "string"}, "required": True}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": _paths(),
    }
    return msgspec.json.encode(doc)


def document(version: str, languages: Sequence[str]) -> Any:
    """The OpenAPI document (as raw JSON, ready to send)."""
    return msgspec.Raw(_document(version, tuple(languages)))


__all__ = ["document"]
