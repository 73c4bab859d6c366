"""The `connection_string` secret type: a database or service URL, or a `key=value` string.

Both forms are parsed into their parts: scheme, host, port, username, password, database and
options. What becomes metadata is only what is clearly not a credential: the scheme, host and
port; the database where the scheme keeps one in its path (an `https://` path can hold a token);
the username only beside a password of its own (`https://ghp_…@github.com` has a token there).
Options never do (`?sslkey=…`, `&X-Amz-Signature=…`). Accepted forms:

- a URL: `postgresql://app:pw@db.internal:5432/payments?sslmode=require`, `redis://…`,
  `mongodb+srv://…`, `sqlite:///path/to.db` (the one kind without a host);
- `key=value` pairs separated by `;` (ADO.NET, ODBC: `Server=tcp:db,1433;Database=app;…`) or
  by spaces (libpq: `host=db port=5432 user=app password=pw dbname=app`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from core.domain.values import SecretValue
from plugins.hookspecs import hookimpl
from plugins.secret_type_support import problem, schema_problems, value_text
from ports.types import SecretType, TypeCheck

SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
HOSTLESS_SCHEMES = frozenset({"sqlite", "sqlite3", "file"})
# `key=value` spellings of each part (lower case, spaces removed).
ALIASES = {
    "host": {"host", "hostaddr", "server", "datasource", "address", "addr", "networkaddress"},
    "port": {"port"},
    "username": {"user", "userid", "uid", "username"},
    "password": {"password", "pwd", "pass"},
    "database": {"database", "dbname", "initialcatalog"},
}
SECRET_OPTION = re.compile(r"pass|pwd|secret|token|key", re.IGNORECASE)
# Schemes whose URL path names a database (or a virtual host, a file): there it is metadata.
DATABASE_SCHEMES = frozenset(
    {
        *("postgresql", "postgres", "pgsql", "cockroachdb", "mysql", "mariadb", "mssql"),
        *("sqlserver", "oracle", "clickhouse", "mongodb", "redis", "rediss", "valkey"),
        *("amqp", "amqps", *HOSTLESS_SCHEMES),
    }
)
# A username that is really a token: a known token prefix, or a long run without separators.
TOKEN_SHAPED = re.compile(
    r"^(gh[pousr]_|github_pat_|glpat-|xox[abpr]-|sk[-_]|rk_|hf_|npm_|AKIA|ASIA|ya29\.|eyJ)"
    r"|^[A-Za-z0-9_\-.=+/~]{40,}$"
)
# More parts (`key=value` pairs, URL query options) than a connection string ever has.
MAX_PARTS = 256
# Passwords that stand beside a token in the user part (`<token>:x-oauth-basic@github.com`).
PLACEHOLDER_PASSWORDS = frozenset({"x-oauth-basic"})


class Unparsable(Exception):
    """Why a connection string does not parse, in our words (never quoting it)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


class ConnectionPartsSchema(Schema):
    """The parts of a parsed connection string."""

    class Meta:
        unknown = RAISE

    scheme = fields.String(validate=validate.Regexp(SCHEME, error="is not a URL scheme"))
    host = fields.String(validate=validate.Length(1, 255))
    port = fields.Integer(strict=True, validate=validate.Range(1, 65535, error="is not a port"))
    username = fields.String(validate=validate.Length(max=256))
    password = fields.String()
    database = fields.String(validate=validate.Length(max=1024))
    options = fields.Dict(keys=fields.String(), values=fields.String())


class ConnectionStringType(SecretType):
    name = "connection_string"
    description = "a database or service connection string (URL or key=value)"
    fields = tuple(ConnectionPartsSchema().fields)
    sensitive_fields = frozenset({"password", "options"})  # and a username standing alone

    def validate(self, value: SecretValue) -> TypeCheck:
        text = value_text(value)
        if text is None:
            return problem("value", "is not UTF-8 text")
        if not text.strip():
            return problem("value", "is empty")
        try:
            parts = parse(text.strip())
            loaded = ConnectionPartsSchema().load(parts)
        except Unparsable as error:
            return problem(error.field, error.reason)
        except ValidationError as error:
            return TypeCheck(problems=schema_problems(error))
        if "host" not in loaded and loaded.get("scheme", "").lower() not in HOSTLESS_SCHEMES:
            return problem("host", "is missing")
        return TypeCheck(metadata=public_parts(loaded))

    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        text = value_text(value)
        if text is None or not self.validate(value).valid:
            raise ValueError("the value is not a valid connection_string")
        return {variable: text.strip()}


def public_parts(parts: dict[str, Any]) -> dict[str, str]:
    """The parts that are metadata: those that cannot be a credential."""
    public = {
        name: str(parts[name])
        for name in ("scheme", "host", "port")
        if parts.get(name) not in (None, "")
    }
    scheme = parts.get("scheme")  # none in the key=value forms, which name their database
    if parts.get("database") and (
        scheme is None or scheme.lower().split("+")[0] in DATABASE_SCHEMES
    ):
        public["database"] = parts["database"]
    username, password = parts.get("username"), parts.get("password")
    if (
        username
        and password
        and password not in PLACEHOLDER_PASSWORDS
        and not TOKEN_SHAPED.search(username)
    ):
        public["username"] = username
    return public


def parse(text: str) -> dict[str, Any]:
    """The parts of a connection string; `Unparsable` if it does not parse."""
    return parse_url(text) if "://" in text or text.startswith("sqlite:") else parse_pairs(text)


def parse_url(text: str) -> dict[str, Any]:
    try:
        url = urlsplit(text)
    except ValueError:
        raise Unparsable("value", "is not a valid URL") from None
    parts: dict[str, Any] = {"scheme": url.scheme}
    try:
        port = url.port
    except ValueError:
        raise Unparsable("port", "is not a port") from None
    found = {
        "host": url.hostname,
        "port": port,
        "username": unquote(url.username) if url.username else None,
        "password": unquote(url.password) if url.password else None,
        "database": unquote(url.path.lstrip("/")) or None,
    }
    parts.update({name: part for name, part in found.items() if part is not None})
    try:
        query = parse_qsl(url.query, max_num_fields=MAX_PARTS)
    except ValueError:
        raise Unparsable("options", f"are more than {MAX_PARTS}") from None
    options = {key: item for key, item in query if not SECRET_OPTION.search(key)}
    if options:
        parts["options"] = options
    return parts


def parse_pairs(text: str) -> dict[str, Any]:
    """`key=value;…` (ADO.NET, ODBC) or `key=value …` (libpq)."""
    try:
        pairs = (
            [p for p in text.split(";") if p.strip()]
            if ";" in text
            else split_words(text, MAX_PARTS + 1)
        )
    except ValueError:
        raise Unparsable("value", "has an unterminated quote") from None
    if len(pairs) > MAX_PARTS:
        raise Unparsable("value", f"has more than {MAX_PARTS} parts")
    parts: dict[str, Any] = {}
    options: dict[str, str] = {}
    for position, pair in enumerate(pairs, start=1):
        key, equals, item = pair.partition("=")
        if not equals or not key.strip():
            raise Unparsable("value", f"part {position} is not key=value")
        normalized = key.strip().lower().replace(" ", "").replace("_", "")
        part = next((name for name, keys in ALIASES.items() if normalized in keys), None)
        if part is None:
            if not SECRET_OPTION.search(normalized):
                options[key.strip()] = item.strip()
            continue
        parts[part] = item.strip()
    if "host" in parts:
        parts.update(_server(parts["host"], parts.get("port")))
    if options:
        parts["options"] = options
    return parts


# One piece of a libpq-style string, as a POSIX shell reads words (what `shlex.split` did, in
# time linear in the text: shlex grew each word a character at a time, quadratic in its length).
WORD_PIECE = re.compile(
    r"""(?P<blank>[ \t\r\n]+)
    |(?P<plain>[^ \t\r\n'"\\]+)
    |'(?P<single>[^']*)'
    |"(?P<double>[^"\\]*(?:\\.[^"\\]*)*)"
    |\\(?P<escaped>.)
    |(?P<unterminated>['"\\])""",
    re.VERBOSE | re.DOTALL,
)
ESCAPED_IN_DOUBLE_QUOTES = re.compile(r'\\(["\\])')


def split_words(text: str, limit: int) -> list[str]:
    """`text` split into words as `shlex.split` does: blanks separate them; single quotes keep
    everything, double quotes everything but `\\"` and `\\\\`, a backslash outside quotes
    keeps the next character. ValueError for an unterminated quote or a trailing backslash. It
    stops at `limit` words (the rest of the text unread)."""
    words: list[str] = []
    word: list[str] | None = None  # None between words; [] is a word of empty quotes
    for piece in WORD_PIECE.finditer(text):
        kind = piece.lastgroup
        if kind == "blank":
            if word is not None:
                words.append("".join(word))
                if len(words) == limit:
                    return words
            word = None
            continue
        if kind == "unterminated":
            raise ValueError("an unterminated quote or escape")
        if word is None:
            word = []
        if kind == "double":
            word.append(ESCAPED_IN_DOUBLE_QUOTES.sub(r"\1", piece.group(kind)))
        else:
            word.append(piece.group(kind or "plain"))
    if word is not None:
        words.append("".join(word))
    return words


def _server(server: str, port: Any) -> dict[str, Any]:
    """ADO.NET's `Server=tcp:host,1433` spelling: the host, and the port it may carry."""
    host, _, inline_port = server.removeprefix("tcp:").partition(",")
    port_text = inline_port or port
    found: dict[str, Any] = {"host": host.strip()}
    if port_text is not None:
        if not str(port_text).strip().isdigit():
            raise Unparsable("port", "is not a port")
        found["port"] = int(port_text)
    return found


@hookimpl
def secret_management_register_secret_types() -> list[SecretType]:
    return [ConnectionStringType()]
