"""The console's foundation: its blueprint, sessions, CSRF, sign-in check and page helpers.

- Sessions: one cookie (`smui_session`, path `/ui`, HttpOnly, SameSite=Lax, Secure over TLS)
  holding the session encrypted and authenticated (Fernet, with a key derived from the key
  provider's, so every worker and restart reads it); it is re-issued with every answer and
  refused once `[ui] idle_timeout_minutes` passed since the last one (the idle timeout).
  The API's paths keep no session at all.
- The credential a session holds (an API token, the development root token, an identity
  provider's ID token) is authenticated again at every request by the API's own authenticator,
  so a revoked token ends the session at once.
- CSRF: every POST under `/ui` carries Flask-WTF's token (form field `csrf_token`, or header
  `X-CSRFToken` for the script's requests); one without it is refused before any view runs.
- Views get the signed-in principal in `g.principal` (`@signed_in`), a `Caller` with this
  request's facts, and call the container's use cases with it as the API does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar, cast

from cryptography.fernet import Fernet, InvalidToken
from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSession, SessionInterface, SessionMixin
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from werkzeug.wrappers import Response as BaseResponse

from core.domain.callers import Caller
from core.domain.errors import ServiceError, Unauthenticated
from core.domain.values import Principal
from entrypoints.container import Container
from entrypoints.http.context import current_container, request_info
from entrypoints.http.errors import status_of
from entrypoints.http.headers import UI_CONTENT_SECURITY_POLICY

PREFIX = "/ui"
COOKIE = "smui_session"
View = TypeVar("View", bound=Callable[..., Any])

bp = Blueprint(
    "ui",
    __name__,
    url_prefix=PREFIX,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


# -- navigation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    order: int = 100


NAVIGATION: list[NavItem] = []


def nav_item(endpoint: str, label: str, order: int = 100) -> None:
    """Add an entry to the header's navigation (once per endpoint), in `order`."""
    if all(item.endpoint != endpoint for item in NAVIGATION):
        NAVIGATION.append(NavItem(endpoint, label, order))
        NAVIGATION.sort(key=lambda item: item.order)


# -- sessions ------------------------------------------------------------------------------


class ConsoleSession(SecureCookieSession):
    """A console session; `expired` when the request's cookie was one no longer accepted."""

    expired = False
    had_cookie = False


class ConsoleSessions(SessionInterface):
    """Encrypted cookie sessions for `/ui`; every other path gets `fallback`'s (the API's
    null session)."""

    def __init__(self, fallback: SessionInterface, key: bytes, idle_seconds: int) -> None:
        self._fallback = fallback
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._idle = idle_seconds

    @staticmethod
    def ours(path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if not self.ours(request.path):
            return self._fallback.open_session(app, request)
        opened = ConsoleSession()
        cookie = request.cookies.get(COOKIE)
        if cookie:
            opened.had_cookie = True
            try:
                data = json.loads(self._fernet.decrypt(cookie.encode("ascii"), ttl=self._idle))
            except (InvalidToken, ValueError, UnicodeEncodeError):
                opened.expired = True
            else:
                if isinstance(data, dict):
                    opened.update(data)
                    opened.modified = False
        return opened

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, ConsoleSession):
            self._fallback.save_session(app, session, response)
            return
        if not session:
            if session.had_cookie:
                response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="Lax")
            return
        sealed = self._fernet.encrypt(json.dumps(dict(session)).encode()).decode("ascii")
        response.set_cookie(
            COOKIE,
            sealed,
            path=PREFIX,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
        )


def derived_key(container: Container, purpose: bytes) -> bytes:
    """A key for `purpose`, derived from the key provider's (kept outside the database)."""
    return hmac.new(container.key_provider().checksum_key(), purpose, hashlib.sha256).digest()


# -- the signed-in principal ---------------------------------------------------------------

# How a session's credential is authenticated, by its kind: `token` by the API's authenticator;
# others (`oidc`) registered by the module that signs them in.
CREDENTIAL_KINDS: dict[str, Callable[[str], Principal]] = {
    "token": lambda credential: current_container().authenticator().authenticate(credential),
}


def start_session(kind: str, credential: str) -> None:
    """A new session for a credential just authenticated: nothing of the old one is kept."""
    session.clear()
    session["kind"] = kind
    session["credential"] = credential
    session["since"] = datetime.now(UTC).isoformat(timespec="seconds")


def current_principal() -> Principal | None:
    """Who the session stands for, its credential authenticated again now; None if nobody."""
    kind, credential = session.get("kind"), session.get("credential")
    authenticate = CREDENTIAL_KINDS.get(kind) if isinstance(kind, str) else None
    if authenticate is None or not isinstance(credential, str):
        return None
    try:
        return authenticate(credential)
    except Unauthenticated:
        session.clear()
        flash("Your sign-in is no longer valid: sign in again.", "error")
        return None


def signed_in(view: View) -> View:
    """The view runs with `g.principal`; a request without a valid session goes to sign-in."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = current_principal()
        if principal is None:
            if getattr(session, "expired", False):
                minutes = container().settings().ui["idle_timeout_minutes"]
                flash(f"Your session ended after {minutes} idle minutes: sign in again.", "info")
            if request.method == "GET":
                session["next"] = request.full_path if request.query_string else request.path
            return redirect(url_for("ui.signin"))
        g.principal = Caller.of(principal, request_info())  # the views' actor
        return view(*args, **kwargs)

    return cast(View, wrapper)


def container() -> Container:
    return current_container()


# -- answers -------------------------------------------------------------------------------


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, **context), status


def failed(error: ServiceError, back: str) -> BaseResponse:
    """A refused action: its message shown on the page it came from (`back`)."""
    flash(error_text(error), "error")
    return redirect(back)


def error_text(error: ServiceError) -> str:
    """What the person is told: the service's message (never holding a value) and its code."""
    return f"{error.message} ({error.code})"


def safe_next(target: Any) -> str:
    """Where to go after signing in: a path under /ui, never another site."""
    if isinstance(target, str) and ConsoleSessions.ours(target) and not target.startswith("//"):
        if "\\" not in target and "://" not in target:
            return target
    return url_for("ui.home")


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def expiry_class(value: datetime | None) -> str:
    """`expired`, `soon` (within the longest expiry warning) or nothing."""
    if value is None:
        return ""
    now = datetime.now(UTC)
    if value <= now:
        return "expired"
    days = max(container().settings().expiry_warning_days or (30,))
    return "soon" if (value - now).days < days else ""


# -- the blueprint's hooks -----------------------------------------------------------------


# Forms that carry a file (an import), by endpoint: their size limit in bytes, instead of the
# request limit; set before the CSRF check reads the form.
LARGE_FORMS: dict[str, Callable[[], int]] = {}


@bp.before_request
def console_request() -> BaseResponse | None:
    g.content_security_policy = UI_CONTENT_SECURITY_POLICY
    large = LARGE_FORMS.get(request.endpoint or "")
    if large is not None:
        request.max_content_length = request.max_form_memory_size = large()
    if request.method == "POST":
        token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken", "")
        try:
            validate_csrf(token)
        except CSRFError as error:
            raise error from None
        except Exception:  # flask-wtf raises ValidationError for a missing or bad token
            raise CSRFError("The form's CSRF token is missing or wrong.") from None
    return None


@bp.errorhandler(CSRFError)
def csrf_refused(error: CSRFError) -> tuple[str, int]:
    return page(
        "error.html",
        400,
        title="Form expired",
        message="This form could not be checked (it expired or came from elsewhere): "
        "go back, reload the page and try again.",
    )


@bp.errorhandler(ServiceError)
def service_refused(error: ServiceError) -> tuple[str, int]:
    status = status_of(error)
    return page("error.html", status, title=f"Error {status}", message=error_text(error))


@bp.errorhandler(404)
def not_found(error: Exception) -> tuple[str, int]:
    return page("error.html", 404, title="Not found", message="There is no such page.")


@bp.app_template_global()
def navigation() -> list[NavItem]:
    return NAVIGATION


@bp.context_processor
def console_context() -> dict[str, Any]:
    return {
        "csrf_token": generate_csrf,
        "principal": g.get("principal"),
        "when": when,
        "expiry_class": expiry_class,
        "utc": UTC,
    }


def install(app: Flask, container: Container) -> None:
    idle_minutes = int(container.settings().ui["idle_timeout_minutes"])
    app.session_interface = ConsoleSessions(
        app.session_interface,
        derived_key(container, b"secret-management ui sessions"),
        idle_minutes * 60,
    )
    app.config.update(
        WTF_CSRF_SECRET_KEY=derived_key(container, b"secret-management ui csrf"),
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which has its own idle timeout
        WTF_CSRF_FIELD_NAME="csrf_token",
    )
    app.register_blueprint(bp)
