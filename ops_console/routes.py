"""Console pages and /api/v1 (mounted by deme.app), plus what the app needs to serve them:
static files and error handlers that answer JSON on the API and HTML pages elsewhere."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Scope

from ops_console.api import router as api_router
from ops_console.api_broadcasts import router as broadcasts_api_router
from ops_console.api_referrals import router as api_referrals_router
from ops_console.pages import router as pages_router
from ops_console.web import STATIC_DIR, LoginRequired, render_error

# Pages and fragments under this size are sent as they are: compressing them saves nothing.
GZIP_MINIMUM_SIZE = 500

router = APIRouter()
router.include_router(api_router)
router.include_router(api_referrals_router)
router.include_router(broadcasts_api_router)
router.include_router(pages_router)


def _describe_validation(exc: RequestValidationError) -> str:
    """One readable sentence naming each bad field: "household_size: Input should be ..."."""
    parts = []
    for error in exc.errors():
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(location) or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


class VersionedStaticFiles(StaticFiles):
    """Static files whose URL names their content (``?v=<hash>``, ``web.static_url``) are
    cached for a year: a new version is a new URL. A URL without it is revalidated."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200 and b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        elif response.status_code in (200, 304):
            response.headers["Cache-Control"] = "no-cache"
        return response


def install(app: FastAPI) -> None:
    """Static files, gzip and exception handlers (called by deme.app.create_app)."""
    app.mount("/static", VersionedStaticFiles(directory=STATIC_DIR), name="static")
    # Field offices are on slow links: pages and htmx (~47 kB → ~15 kB) travel compressed.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE)

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
