"""Front-end assets installed from the npm registry (never committed) and served from
our own origin."""

from __future__ import annotations

from quart import Blueprint

from chat.settings import PROJECT_ROOT

HTMX_DIST = PROJECT_ROOT / "node_modules" / "htmx.org" / "dist"
REQUIRED = ("htmx.min.js", "ext/hx-ws.js", "ext/hx-upsert.js")
INSTALL_COMMAND = "npm ci"


class AssetsMissing(RuntimeError):
    pass


def vendor_blueprint() -> Blueprint:
    missing = [name for name in REQUIRED if not (HTMX_DIST / name).is_file()]
    if missing:
        raise AssetsMissing(
            f"htmx assets are missing ({', '.join(missing)} under {HTMX_DIST}); "
            f"install them with `{INSTALL_COMMAND}` in {PROJECT_ROOT}"
        )
    return Blueprint("vendor", __name__, static_folder=HTMX_DIST, static_url_path="/vendor/htmx")


SWAGGER_DIST = PROJECT_ROOT / "node_modules" / "swagger-ui-dist"
SWAGGER_REQUIRED = ("swagger-ui-bundle.js", "swagger-ui.css")


def swagger_blueprint() -> Blueprint:
    """Swagger UI's files, for the API docs page (`/docs`)."""
    missing = [name for name in SWAGGER_REQUIRED if not (SWAGGER_DIST / name).is_file()]
    if missing:
        raise AssetsMissing(
            f"Swagger UI assets are missing ({', '.join(missing)} under {SWAGGER_DIST}); "
            f"install them with `{INSTALL_COMMAND}` in {PROJECT_ROOT}"
        )
    return Blueprint(
        "swagger", __name__, static_folder=SWAGGER_DIST, static_url_path="/vendor/swagger-ui"
    )
