"""/docs (Swagger UI) and /redoc served whole by the service: their scripts and styles come
from the pinned npm packages ``swagger-ui-dist`` and ``redoc`` (package.json), never from a
CDN, so the pages work on an intranet with no way out."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

NODE_MODULES = Path(__file__).resolve().parents[1] / "node_modules"
SWAGGER_UI = NODE_MODULES / "swagger-ui-dist"
REDOC = NODE_MODULES / "redoc" / "bundles"


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets (the app is built with docs_url=None)."""
    app.mount("/assets/swagger-ui", StaticFiles(directory=SWAGGER_UI, check_dir=False),
              name="swagger-ui-assets")
    app.mount("/assets/redoc", StaticFiles(directory=REDOC, check_dir=False),
              name="redoc-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{title} - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/assets/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/assets/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/assets/swagger-ui/favicon-32x32.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json",
                              title=f"{title} - ReDoc",
                              redoc_js_url="/assets/redoc/redoc.standalone.js",
                              redoc_favicon_url="/assets/swagger-ui/favicon-32x32.png",
                              with_google_fonts=False)
