"""Console pages and /api/v1 (mounted by deme.app), plus what the app needs to serve them:
static files and error handlers that answer JSON on the API and HTML pages elsewhere."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ops_console.api import router as api_router
from ops_console.pages import router as pages_router
from ops_console.web import LoginRequired, render_error

STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)


def _describe_validation(exc: RequestValidationError) -> str:
    """One readable sentence naming each bad field: "household_size: Input should be ..."."""
    parts = []
    for error in exc.errors():
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(location) or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Static files and exception handlers (called by deme.app.create_app)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/v1"):
            return JSONResponse({"detail": _describe_validation(exc)}, status_code=422)
        if request.url.path.startswith("/api/"):
            return await request_validation_exception_handler(request, exc)
        return render_error(request, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith(("/api/", "/webhooks", "/gateway", "/healthz")):
            return await http_exception_handler(request, exc)
        accepts_html = "text/html" in request.headers.get("accept", "")
        if not accepts_html and not request.headers.get("hx-request"):
            return await http_exception_handler(request, exc)
        return render_error(request, exc.status_code)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return exc.response(request)
