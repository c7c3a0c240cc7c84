"""What the OpenAPI schema says beyond FastAPI's default: the error shape we really answer, and
the links between operations (an upload's ``id`` is the run to read, its ``folder_id`` the
folder to list), which clients and schemathesis's stateful tests follow."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "the first problem, naming the field"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"loc": {"type": "array", "items": {"type": "string"}},
                               "msg": {"type": "string"}, "type": {"type": "string"}},
            },
        },
    },
}
"""What every 422 (and a 400 for an unstorable value) answers: ``detail`` is one readable string,
as in every other error of this API, and ``errors`` lists each problem. FastAPI's default schema
says ``detail`` is an array, which no answer of ours ever was."""

_RUN = "/runs/{run_id}"
_FOLDER = "/folders/{folder_id}"
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("put", _RUN, "200"): {
        "ReadRun": ("get", _RUN, {"run_id": "$response.body#/id"}),
        "RunArtifacts": ("get", _RUN + "/artifacts", {"run_id": "$response.body#/id"}),
        "RunLogs": ("get", _RUN + "/logs", {"run_id": "$response.body#/id"}),
        "SendLogs": ("post", _RUN + "/logs/{rank}", {"run_id": "$response.body#/id"}),
        "SendMetrics": ("post", _RUN + "/metrics/{rank}", {"run_id": "$response.body#/id"}),
        "RunMedia": ("get", _RUN + "/media", {"run_id": "$response.body#/id"}),
        "SendMedia": ("post", _RUN + "/media/{rank}", {"run_id": "$response.body#/id"}),
        "RunLineage": ("get", "/lineage/{node_id}", {"node_id": "$response.body#/id"}),
        "SearchFolder": ("get", "/runs", {"folder_id": "$response.body#/folder_id"}),
        "RunFolder": ("get", _FOLDER, {"folder_id": "$response.body#/folder_id"}),
    },
    ("post", "/folders", "201"): {
        "ReadFolder": ("get", _FOLDER, {"folder_id": "$response.body#/id"}),
        "FolderRuns": ("get", _FOLDER + "/runs", {"folder_id": "$response.body#/id"}),
        "ShareFolder": ("post", _FOLDER + "/shares", {"folder_id": "$response.body#/id"}),
        "SearchFolder": ("get", "/runs", {"folder_id": "$response.body#/id"}),
    },
    ("put", "/artifacts/{artifact_id}", "200"): {
        "ReadArtifact": ("get", "/artifacts/{artifact_id}", {"artifact_id": "$response.body#/id"}),
        "ArtifactLineage": ("get", "/lineage/{node_id}", {"node_id": "$response.body#/id"}),
    },
}
"""``(method, path, status) -> {link name: (method, path, {parameter: runtime expression})}``, paths under the API prefix."""


def document(app: FastAPI, prefix: str) -> None:
    """Make ``app``'s OpenAPI schema describe the validation errors it answers and the links between its operations."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI caches it: the changes below are made once
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
        paths = schema.get("paths", {})
        for (method, path, status), links in LINKS.items():
            response = paths.get(prefix + path, {}).get(method, {}).get("responses", {}).get(status)
            if response is None:
                continue
            out = response.setdefault("links", {})
            for name, (target_method, target_path, parameters) in links.items():
                target = paths.get(prefix + target_path, {}).get(target_method)
                if target is not None:
                    out[name] = {"operationId": target["operationId"], "parameters": dict(parameters)}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
