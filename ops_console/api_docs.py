"""The API documentation in production: only for signed-in staff (a console session or a
bearer token). In development FastAPI serves it openly at the same paths."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from ops_console.deps import StaffViewer


def install_staff_docs(app: FastAPI) -> None:
    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi_document(_viewer: StaffViewer) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(_viewer: StaffViewer) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title="Deme API")
