"""A fake Azure Key Vault (the secrets operations this service uses) and its token issuer.

No Key Vault emulator installs here, and the SDK sends bearer tokens over HTTPS only, so this is
a small HTTPS server on 127.0.0.1 with a self-signed certificate, driven by the real
`azure-keyvault-secrets` client and the real `azure-identity` client-secret credential. It follows
the documented REST behaviour the backend relies on:

- authentication: a request without a valid bearer token gets 401 and the Key Vault challenge
  (`WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="..."`); tokens come
  from an OAuth client-credentials endpoint (with its OpenID discovery document), which refuses
  a wrong client secret with `invalid_client`;
- secrets: names `^[0-9a-zA-Z-]{1,127}$`; every set makes a new version with a 32-hex-digit id;
  get by version or latest; a disabled version answers 403 `Forbidden`/`SecretDisabled`;
- soft delete: delete moves every version to the deleted secrets (recoverable), where the name
  stays reserved (409 on set) until the secret is recovered or purged (403 when the vault has
  purge protection);
- lists are paged with `nextLink`, errors are `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_VALUE_BYTES = 25 * 1024
RESOURCE = "https://vault.azure.net"
RECOVERY_DAYS = 90


@dataclass
class Version:
    id: str
    value: str
    content_type: str | None
    tags: dict[str, str]
    enabled: bool = True
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class StoredSecret:
    versions: list[Version] = field(default_factory=list)
    deleted_at: int | None = None


class KeyVaultError(Exception):
    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return {"error": error}


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fake-key-vault.pem", directory / "fake-key-vault.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class FakeKeyVault:
    """One vault and its tenant's token endpoint, served over HTTPS on a free port."""

    def __init__(self, directory: Path, tenant: str, client_id: str, client_secret: str) -> None:
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        self.purge_protection = False
        self.secrets: dict[str, StoredSecret] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every vault request
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self.ca_bundle, key_path = self_signed_certificate(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, key_path)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeKeyVault:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.requests if method != "GET"]

    # -- identity ---------------------------------------------------------------------------

    def openid_configuration(self) -> dict[str, Any]:
        base = f"{self.url}/{self.tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "tenant_region_scope": None,
        }

    def issue_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != self.client_id or not secrets.compare_digest(
            form.get("client_secret", ""), self.client_secret
        ):
            return 401, {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.",
                "error_codes": [7000215],
            }
        token = secrets.token_urlsafe(24)
        self._tokens.add(token)
        return 200, {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }

    def authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        return scheme == "Bearer" and token in self._tokens

    def challenge(self) -> str:
        return f'Bearer authorization="{self.url}/{self.tenant}", resource="{RESOURCE}"'

    # -- secrets ----------------------------------------------------------------------------

    def handle(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> Any:
        """The answer to one authenticated vault request: (status, body or None)."""
        with self._lock:
            match method, parts:
                case "PUT", ["secrets", name]:
                    return 200, self._set(name, body)
                case "GET", ["secrets"]:
                    names = sorted(n for n, s in self.secrets.items() if s.deleted_at is None)
                    items = [self._item(n, self._latest(n), versioned=False) for n in names]
                    return 200, self._page(items, query, "/secrets")
                case "GET", ["secrets", name, "versions"]:
                    versions = self._live(name).versions
                    items = [self._item(name, v, versioned=True) for v in versions]
                    return 200, self._page(items, query, f"/secrets/{name}/versions")
                case "GET", ["secrets", name] | ["secrets", name, ""]:
                    return 200, self._bundle(name, self._readable(self._latest(name)))
                case "GET", ["secrets", name, version]:
                    return 200, self._bundle(name, self._readable(self._version(name, version)))
                case "PATCH", ["secrets", name, version]:
                    return 200, self._update(name, version, body)
                case "DELETE", ["secrets", name]:
                    secret = self._live(name)
                    secret.deleted_at = int(time.time())
                    return 200, self._deleted(name, secret)
                case "GET", ["deletedsecrets", name]:
                    return 200, self._deleted(name, self._soft_deleted(name))
                case "DELETE", ["deletedsecrets", name]:
                    self._soft_deleted(name)
                    if self.purge_protection:
                        raise KeyVaultError(
                            403,
                            "Forbidden",
                            "Operation 'purge' is not allowed: purge protection is enabled "
                            "for this vault.",
                        )
                    del self.secrets[name]
                    return 204, None
                case "POST", ["deletedsecrets", name, "recover"]:
                    secret = self._soft_deleted(name)
                    secret.deleted_at = None
                    return 200, self._bundle(name, secret.versions[-1], with_value=False)
        raise KeyVaultError(
            400, "BadParameter", f"Unsupported operation {method} /{'/'.join(parts)}"
        )

    def _set(self, name: str, body: Any) -> dict[str, Any]:
        if not NAME.fullmatch(name):
            raise KeyVaultError(
                400, "BadParameter", f"The request URI contains an invalid name: {name}"
            )
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise KeyVaultError(400, "BadParameter", "Property 'value' is required.")
        if len(body["value"].encode()) > MAX_VALUE_BYTES:
            raise KeyVaultError(400, "BadParameter", "The secret value is too large.")
        secret = self.secrets.setdefault(name, StoredSecret())
        if secret.deleted_at is not None:
            raise KeyVaultError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the secret can only be recovered or purged.",
            )
        enabled = body.get("attributes", {}).get("enabled", True)
        version = Version(
            secrets.token_hex(16), body["value"], body.get("contentType"), body.get("tags") or {}
        )
        version.enabled = bool(enabled)
        secret.versions.append(version)
        return self._bundle(name, version)

    def _update(self, name: str, version_id: str, body: Any) -> dict[str, Any]:
        version = self._version(name, version_id)
        attributes = body.get("attributes") or {}
        if "enabled" in attributes:
            version.enabled = bool(attributes["enabled"])
        if "contentType" in body:
            version.content_type = body["contentType"]
        if "tags" in body:
            version.tags = body["tags"] or {}
        return self._bundle(name, version, with_value=False)

    def _live(self, name: str) -> StoredSecret:
        secret = self.secrets.get(name)
        if secret is None or secret.deleted_at is not None:
            raise KeyVaultError(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name} was not found in this key vault.",
            )
        return secret

    def _soft_deleted(self, name: str) -> StoredSecret:
        secret = self.secrets.get(name)
        if secret is None or secret.deleted_at is None:
            raise KeyVaultError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return secret

    def _latest(self, name: str) -> Version:
        return self._live(name).versions[-1]

    def _version(self, name: str, version_id: str) -> Version:
        for version in self._live(name).versions:
            if version.id == version_id:
                return version
        raise KeyVaultError(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {name}/{version_id} was not found in this key vault.",
        )

    @staticmethod
    def _readable(version: Version) -> Version:
        if not version.enabled:
            raise KeyVaultError(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                inner="SecretDisabled",
            )
        return version

    def _attributes(self, version: Version) -> dict[str, Any]:
        return {
            "enabled": version.enabled,
            "created": version.created,
            "updated": version.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": RECOVERY_DAYS,
        }

    def _item(self, name: str, version: Version, *, versioned: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": f"{self.url}/secrets/{name}" + (f"/{version.id}" if versioned else ""),
            "attributes": self._attributes(version),
            "tags": version.tags,
        }
        if version.content_type is not None:
            item["contentType"] = version.content_type
        return item

    def _bundle(self, name: str, version: Version, *, with_value: bool = True) -> dict[str, Any]:
        bundle = self._item(name, version, versioned=True)
        if with_value:
            bundle["value"] = version.value
        return bundle

    def _deleted(self, name: str, secret: StoredSecret) -> dict[str, Any]:
        deleted_at = secret.deleted_at or int(time.time())
        return {
            **self._bundle(name, secret.versions[-1], with_value=False),
            "recoveryId": f"{self.url}/deletedsecrets/{name}",
            "deletedDate": deleted_at,
            "scheduledPurgeDate": deleted_at + RECOVERY_DAYS * 86400,
        }

    def _page(self, items: list[Any], query: dict[str, str], path: str) -> dict[str, Any]:
        size = int(query.get("maxresults") or 25)
        start = int(query.get("$skiptoken") or 0)
        page: dict[str, Any] = {"value": items[start : start + size], "nextLink": None}
        if start + size < len(items):
            params = {"api-version": query["api-version"], "maxresults": size}
            params["$skiptoken"] = start + size
            page["nextLink"] = f"{self.url}{path}?{urlencode(params)}"
        return page


def _handler(vault: FakeKeyVault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_request(self) -> None:
            url = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            parts = url.path.strip("/").split("/") if url.path.strip("/") else []
            if url.path.endswith("/") and parts and parts[0] == "secrets" and len(parts) == 2:
                parts.append("")
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if parts and parts[0] == vault.tenant:
                self._identity(parts[1:], raw)
                return
            vault.requests.append((self.command, url.path))
            if not vault.authorized(self.headers.get("Authorization")):
                self._send(
                    401,
                    {"error": {"code": "Unauthorized", "message": "AKV10000"}},
                    {"WWW-Authenticate": vault.challenge()},
                )
                return
            if "api-version" not in query:
                self._send(
                    400, {"error": {"code": "BadParameter", "message": "api-version required"}}
                )
                return
            try:
                status, body = vault.handle(self.command, parts, query, json.loads(raw or b"{}"))
            except KeyVaultError as error:
                status, body = error.status, error.body()
            self._send(status, body)

        def _identity(self, parts: list[str], raw: bytes) -> None:
            if parts == ["v2.0", ".well-known", "openid-configuration"]:
                self._send(200, vault.openid_configuration())
            elif parts == ["oauth2", "v2.0", "token"] and self.command == "POST":
                form = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
                self._send(*vault.issue_token(form))
            else:
                self._send(404, {"error": "not_found"})

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = do_request

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test output shows failures, not every request."""

    return Handler
