"""`finetune-studio serve RUN_OR_EXPORT`: the run's predictor behind a small HTTP endpoint (Starlette on uvicorn,
the server stack Streamlit itself runs on). POST /predict takes a JSON batch and answers the predictions; GET
/health says what is loaded. Requests are bounded (body size, batch length); a malformed one gets a 4xx with a
message, never a traceback. Batches run one at a time beside the event loop, so /health answers meanwhile."""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import StudioError
from .files import Loaded

MAX_BODY_MB = 32
MAX_BATCH = 256


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse(body: bytes, file_inputs: bool, max_batch: int) -> list[Any]:
    """The inputs of a request: {"inputs": [...]} with texts, or images as base64 strings (or {"base64": ...})."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(400, f'The body is not JSON ({e}). Send {{"inputs": [...]}}.') from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise BadRequest(400, 'Send a JSON object with "inputs": a list of texts, or of base64-encoded images.')
    inputs = doc["inputs"]
    if not inputs:
        raise BadRequest(400, '"inputs" is empty: send at least one input.')
    if len(inputs) > max_batch:
        raise BadRequest(413, f"{len(inputs)} inputs in one request; at most {max_batch}. Split the batch.")
    if file_inputs:
        out = []
        for i, x in enumerate(inputs):
            data = x.get("base64") if isinstance(x, dict) else x
            if not isinstance(data, str):
                raise BadRequest(422, f'inputs[{i}]: an image is a base64 string (or {{"base64": ...}}).')
            try:
                out.append(base64.b64decode(data, validate=True))
            except (binascii.Error, ValueError):
                raise BadRequest(422, f"inputs[{i}]: not valid base64.") from None
        return out
    bad = next((i for i, x in enumerate(inputs) if not isinstance(x, str)), None)
    if bad is not None:
        raise BadRequest(422, f"inputs[{bad}]: this model reads text; got {type(inputs[bad]).__name__}.")
    return inputs


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused once it passes the limit (a missing or lying Content-Length included). What is
    over the limit is read and dropped, up to a few times the limit, so the client hears why; beyond that the
    connection is cut."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > 8 * limit:
            break
    if size > limit:
        declared = int(request.headers.get("content-length") or size)
        raise BadRequest(413, f"The request is {max(declared, size) / 2**20:.1f} MB; at most {limit / 2**20:.0f} MB. "
                              "Send fewer inputs per request.")
    return b"".join(chunks)


class Service:
    def __init__(self, folder: str | Path, max_body_mb: float = MAX_BODY_MB, max_batch: int = MAX_BATCH):
        self.model = Loaded(folder)
        self.max_body, self.max_batch = int(max_body_mb * 2**20), max_batch
        self.pool = ThreadPoolExecutor(max_workers=1)  # one batch at a time: a predictor is not shared by threads

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": self.model.title, "modality": self.model.modality,
                             "classes": self.model.classes})

    async def predict(self, request: Request) -> JSONResponse:
        try:
            inputs = parse(await _body(request, self.max_body), self.model.file_inputs, self.max_batch)
            rows = await asyncio.get_running_loop().run_in_executor(self.pool, self.model.answer, inputs)
        except BadRequest as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except StudioError as e:
            return JSONResponse({"error": str(e)}, status_code=422)
        return JSONResponse({"predictions": rows})

    def app(self) -> Starlette:
        async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
            return JSONResponse({"error": f"{exc.detail}: {request.method} {request.url.path} (try GET /health "
                                          "or POST /predict)"}, status_code=exc.status_code)

        return Starlette(routes=[Route("/health", self.health, methods=["GET"]),
                                 Route("/predict", self.predict, methods=["POST"])],
                         exception_handlers={HTTPException: http_error})


def run(folder: str | Path, host: str = "127.0.0.1", port: int = 8000, max_body_mb: float = MAX_BODY_MB,
        max_batch: int = MAX_BATCH) -> None:
    import uvicorn  # imported by the one command that serves

    service = Service(folder, max_body_mb, max_batch)
    print(f"Serving {service.model.title} at http://{host}:{port} (POST /predict, GET /health)", flush=True)
    uvicorn.run(service.app(), host=host, port=port, log_level="warning")
