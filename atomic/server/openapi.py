"""The OpenAPI 3 document of every route (``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}

LIMITS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "memory_mb": {"type": "integer", "minimum": 1},
        "cpus": {"type": "number", "exclusiveMinimum": 0},
        "pids": {"type": "integer", "minimum": 1},
    },
}

GENERATE = {
    "type": "object",
    "required": ["prompt"],
    "additionalProperties": False,
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": 32000},
        "language": {"type": "string", "default": "python"},
        "priority": {"type": "string", "enum": ["low", "normal", "high"], "default": "normal"},
        "provider": {"type": "string"},
        "model": {"type": "string"},
        "execute": {"type": "boolean", "default": True},
        "limits": {"$ref": "#/components/schemas/Limits"},
        "export": {"type": "array", "items": {"type": "string", "enum": ["zip", "tar", "git"]}},
        "wait": {"type": "boolean", "default": False},
    },
}

EXECUTION = {
    "type": "object",
    "properties": {
        "exit_code": {"type": ["integer", "null"]},
        "stdout": {"type": "string"},
        "stderr": {"type": "string"},
        "duration_ms": {"type": "number"},
        "termination": {
            "type": "string",
            "enum": ["exited", "timeout", "oom", "pids", "output_limit", "cancelled", "error"],
        },
        "truncated": {"type": "boolean"},
    },
}

JOB = {
    "type": "object",
    "required": ["id", "state", "priority", "progress", "created_at", "stages", "request", "files",
                 "execution", "usage", "artifacts", "error"],
    "properties": {
        "id": {"type": "string"},
        "state": {"type": "string", "enum": ["QUEUED", "PARSING", "GENERATING", "PACKAGING", "EXECUTING",
                                              "EXPORTING", "COMPLETE", "FAILED", "CANCELLED"]},
        "priority": {"type": "string"},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "queue_position": {"type": ["integer", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"]},
        "finished_at": {"type": ["string", "null"]},
        "stages": {"type": "array", "items": {"type": "object"}},
        "request": {"type": "object"},
        "files": {"type": "array", "items": {"type": "object", "properties": {
            "path": {"type": "string"}, "size": {"type": "integer"}, "sha256": {"type": "string"}}}},
        "execution": {"oneOf": [{"$ref": "#/components/schemas/Execution"}, {"type": "null"}]},
        "attempts": {"type": "array", "items": {"type": "object"}},
        "usage": {"type": "object"},
        "artifacts": {"type": "array", "items": {"type": "object"}},
        "error": {"type": ["object", "null"]},
    },
}

EXECUTE = {
    "type": "object",
    "required": ["files"],
    "properties": {
        "language": {"type": "string", "default": "python"},
        "files": {"type": "array", "items": {"type": "object", "required": ["path", "content"], "properties": {
            "path": {"type": "string"}, "content": {"type": "string"}}}},
        "entrypoint": {"type": "string"},
        "command": {"type": "array", "items": {"type": "string"}},
        "stdin": {"type": "string"},
        "limits": {"$ref": "#/components/schemas/Limits"},
        "priority": {"type": "string", "enum": ["low", "normal", "high"]},
    },
}


def _resp(desc: str, schema: dict[str, Any] | None = None, ctype: str = "application/json") -> dict[str, Any]:
    out: dict[str, Any] = {"description": desc}
    if schema is not None:
        out["content"] = {ctype: {"schema": schema}}
    return out


def _errors(*codes: int) -> dict[str, Any]:
    names = {400: "Invalid JSON", 401: "Unauthorized", 404: "Not found", 409: "Job already finished",
             413: "Payload too large", 415: "Unsupported media type", 422: "Validation error",
             429: "Queue full (see Retry-After)", 503: "Shutting down or unavailable"}
    return {str(c): _resp(names[c], {"$ref": "#/components/schemas/Error"}) for c in codes}


def document(version: str) -> dict[str, Any]:
    job_ref = {"$ref": "#/components/schemas/Job"}
    exec_ref = {"$ref": "#/components/schemas/Execution"}
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Atomic", "version": version,
                 "description": "A prompt in, a tested, packaged program out."},
        "components": {
            "schemas": {"Error": ERROR, "Limits": LIMITS, "GenerateRequest": GENERATE, "Job": JOB,
                        "Execution": EXECUTION, "ExecuteRequest": EXECUTE},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/health": {"get": {"summary": "Liveness; touches no dependency", "security": [],
                                "responses": {"200": _resp("ok", {"type": "object"})}}},
            "/api/status": {"get": {"summary": "Service status", "responses": {
                "200": _resp("status", {"type": "object"}), **_errors(401)}}},
            "/api/metrics": {"get": {"summary": "Metrics as JSON", "responses": {
                "200": _resp("metrics", {"type": "object"}), **_errors(401)}}},
            "/metrics": {"get": {"summary": "Metrics in Prometheus text format", "responses": {
                "200": _resp("metrics", {"type": "string"}, "text/plain"), **_errors(401)}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {
                "200": _resp("OpenAPI document", {"type": "object"})}}},
            "/api/generate": {"post": {
                "summary": "Submit a prompt",
                "parameters": [{"name": "wait", "in": "query", "schema": {"type": "boolean"}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/GenerateRequest"}}}},
                "responses": {"202": _resp("accepted", job_ref), "200": _resp("finished (wait)", job_ref),
                              **_errors(400, 401, 413, 415, 422, 429, 503)}}},
            "/api/jobs": {"get": {
                "summary": "List jobs, newest first",
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _resp("jobs", {"type": "object", "properties": {
                    "jobs": {"type": "array", "items": job_ref}, "next": {"type": ["string", "null"]}}}),
                    **_errors(401, 422)}}},
            "/api/jobs/{job_id}": {
                "get": {"summary": "A job document", "parameters": [job_id],
                        "responses": {"200": _resp("job", job_ref), **_errors(401, 404)}},
                "delete": {"summary": "Cancel a job", "parameters": [job_id],
                           "responses": {"200": _resp("cancelled", job_ref), **_errors(401, 404, 409)}},
            },
            "/api/jobs/{job_id}/artifact": {"get": {
                "summary": "Download an artifact",
                "parameters": [job_id, {"name": "format", "in": "query",
                                        "schema": {"type": "string", "enum": ["zip", "tar", "git"]}}],
                "responses": {"200": {"description": "archive bytes",
                                      "content": {"application/zip": {}, "application/gzip": {}}},
                              **_errors(401, 404, 422)}}},
            "/api/execute": {"post": {
                "summary": "Run code in the sandbox",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ExecuteRequest"}}}},
                "responses": {"200": _resp("result", exec_ref), **_errors(400, 401, 413, 415, 422, 429, 503)}}},
            "/api/execute/batch": {"post": {
                "summary": "Run up to 64 programs",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"runs": {"type": "array", "maxItems": 64,
                                                              "items": {"$ref": "#/components/schemas/ExecuteRequest"}}}}}}},
                "responses": {"200": _resp("results in order", {"type": "object"}),
                              **_errors(400, 401, 413, 415, 422, 429, 503)}}},
            "/ws/stream": {"get": {
                "summary": "WebSocket: start or follow a job (upgrade)",
                "parameters": [{"name": "job_id", "in": "query", "schema": {"type": "string"}},
                               {"name": "token", "in": "query", "schema": {"type": "string"}}],
                "responses": {"101": {"description": "switching protocols"}, **_errors(401)}}},
        },
    }
