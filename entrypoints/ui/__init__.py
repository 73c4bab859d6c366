"""The web console under `/ui`: server-rendered pages over the same use cases as the API.

`install(app, container)` registers it (entrypoints/http/app.py does, when `[ui] enabled`).
Each view module adds its routes to the one blueprint `entrypoints.ui.web.bp`; to add one, list
it in `VIEW_MODULES` (see /work/notes/ui-foundation.md and docs/ui.md).
"""

from __future__ import annotations

import importlib

from flask import Flask, redirect, url_for

from entrypoints.container import Container

# The modules whose import adds their routes (and navigation entries) to the blueprint.
VIEW_MODULES = (
    "entrypoints.ui.signin",
    "entrypoints.ui.scopes",
    "entrypoints.ui.secrets",
    "entrypoints.ui.secret_page",
    "entrypoints.ui.access",
    "entrypoints.ui.audit",
    "entrypoints.ui.resolve",
    "entrypoints.ui.transfer",
    "entrypoints.ui.operations",
)


def install(app: Flask, container: Container) -> None:
    from entrypoints.ui import signin, web

    for module in VIEW_MODULES:
        importlib.import_module(module)
    signin.check_configured(container)  # a bad setting stops the start, never a request
    web.install(app, container)
    # Someone opening the server's address in a browser lands on the console.
    app.add_url_rule("/", "console_root", lambda: redirect(url_for("ui.home")))
