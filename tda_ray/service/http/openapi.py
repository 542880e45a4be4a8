"""OpenAPI documentation shared by the routes: error responses, links between operations, raw bodies."""

from __future__ import annotations

from typing import Any

from tda_ray.service.http.models import ErrorOut, EventsNotPublished, PointCloudIn

Responses = dict[int | str, dict[str, Any]]
ERR: dict[str, Any] = {"model": ErrorOut}
R401: Responses = {401: {**ERR, "description": "Missing or wrong API key"}}
R404: Responses = {404: {**ERR, "description": "Unknown id"}}
R409: Responses = {409: {**ERR, "description": "Not possible in the job's current state"}}
R413: Responses = {413: {**ERR, "description": "Request body over the size limit"}}
R415: Responses = {415: {**ERR, "description": "Unsupported content type"}}
R422: Responses = {422: {**ERR, "description": "Invalid input"}}
R503: Responses = {503: {**ERR, "description": "Kafka is disabled or unreachable; nothing was published"}}
R503_EVENTS: Responses = {
    503: {
        "model": EventsNotPublished,
        "description": "Kafka is disabled or did not take every event: `published` lists those it did",
    }
}

# The Idempotency-Key header of the POSTs that create something (README "Safe retries").
IDEMPOTENCY: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x21-\\x7e]+$"},
            "description": "Any unique string: a retry with the same key gets the first (successful) answer, "
            "and nothing is done twice. The same key with another request is a 422; 409 while the first runs.",
        }
    ]
}

# OpenAPI links: how a response's id feeds the next call (clients, and schemathesis' stateful phase).
JOB_ID = {"job_id": "$response.body#/id"}
PC_LINKS = {
    "GetPointCloud": {"operationId": "get_pointcloud", "parameters": {"pointcloud_id": "$response.body#/id"}},
    "SubmitJob": {"operationId": "submit_job", "requestBody": {"pointcloud_id": "$response.body#/id"}},
}
JOB_LINKS = {
    "GetJob": {"operationId": "get_job", "parameters": JOB_ID},
    "GetResult": {"operationId": "get_result", "parameters": JOB_ID},
    "CancelJob": {"operationId": "cancel_job", "parameters": JOB_ID},
    "GetDiagramSvg": {"operationId": "diagram_svg", "parameters": JOB_ID},
    "GetDiagramPng": {"operationId": "diagram_png", "parameters": JOB_ID},
    "GetBarcodeSvg": {"operationId": "barcode_svg", "parameters": JOB_ID},
    "GetBarcodePng": {"operationId": "barcode_png", "parameters": JOB_ID},
    "GetVectors": {"operationId": "get_vectors", "parameters": JOB_ID},
    "GetDistanceToItself": {"operationId": "get_distance", "parameters": {**JOB_ID, "other_id": "$response.body#/id"}},
}

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PointCloudIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".npy (never unpickled), .csv/.txt (one point per line) or .parquet",
                        },
                        "name": {"type": "string", "maxLength": 200},
                    },
                }
            },
            # Raw bodies, streamed to storage; the bytes decide the format (octet-stream: either).
            **{
                t: {"schema": {"type": "string", "format": "binary", "description": "a 2-D .npy or a Parquet file"}}
                for t in ("application/x-npy", "application/vnd.apache.parquet", "application/octet-stream")
            },
        },
    }
}


PART_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
