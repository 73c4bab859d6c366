"""The interactive API docs (`/api/v1/docs`): Swagger UI served from the installed
`swagger-ui-bundle` package, so the page makes no request beyond this server and its
Content-Security-Policy allows this server's own scripts only (no inline script)."""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, abort, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

blp = Blueprint("swagger-ui", __name__)

# The files of the bundle the page uses (and their source maps, for a browser's developer tools).
ASSETS = frozenset(
    {
        "swagger-ui-bundle.js",
        "swagger-ui-bundle.js.map",
        "swagger-ui.css",
        "swagger-ui.css.map",
        "favicon-32x32.png",
    }
)
# What the inline script of Swagger UI's own page does, as a file of this server. No validator
# badge (an image from another host), no spec explorer: the page shows this API only.
INITIALIZER = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis]
  });
});
"""
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Secret Management API</title>
<link rel="icon" type="image/png" href="{icon}">
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{bundle}"></script>
<script src="{initializer}"></script>
</body>
</html>
"""


@blp.get("/api/v1/docs")
def page() -> Response:
    urls = {
        "icon": url_for(".asset", name="favicon-32x32.png"),
        "css": url_for(".asset", name="swagger-ui.css"),
        "bundle": url_for(".asset", name="swagger-ui-bundle.js"),
        "initializer": url_for(".initializer"),
        "spec": url_for("api-docs.openapi_json"),
    }
    html = PAGE.format(**{name: escape(url) for name, url in urls.items()})
    return Response(html, mimetype="text/html")


@blp.get("/api/v1/docs/initializer.js")
def initializer() -> Response:
    return Response(INITIALIZER, mimetype="text/javascript")


@blp.get("/api/v1/docs/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404)
    return send_from_directory(str(swagger_ui_path), name)
