"""The `vault` backend: HashiCorp Vault or OpenBao, a KV version 2 mount, through hvac.

One KV key per secret, `<mount>/<path_prefix>/<secret uuid>`, one KV version per secret version;
the locator pins the KV version, so each version stays readable by its own locator after later
ones are written (the key keeps `max_versions` of them; the mount's default would keep 10).
Text is stored as `{"value": ...}`, other bytes as `{"value_base64": ...}`; an adopted key with
other fields reads as the JSON object of its fields. `destroy` destroys that KV version for good,
`purge` deletes the key with every version.

Authentication: a token (`token_env` or `token_file`, else hvac's own chain: `VAULT_TOKEN`,
`~/.vault-token`) or AppRole (`role_id`, `secret_id_env` or `secret_id_file`). When Vault refuses
the token, the backend authenticates again once (re-reading the token file, or logging in with
AppRole again) and retries, so rotated tokens and expired logins recover by themselves.
hvac is imported only when an instance is built, so a missing SDK never breaks discovery.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import requests

from core.domain.errors import (
    BackendAuthFailed,
    BackendUnavailable,
    InvalidInput,
    NotFound,
    ServiceError,
)
from core.domain.values import SecretValue, VersionKey
from plugins.backend_settings import BackendSettings
from plugins.external import (
    ExternalNames,
    Locator,
    adoptable,
    bound_locator,
    call,
    check_size,
    quiet_sdk_loggers,
    text_of,
    timed_health,
)
from plugins.hookspecs import hookimpl
from ports.storage import (
    BackendCapabilities,
    BackendContext,
    BackendHealth,
    BackendPlugin,
    ExternalSecret,
    StorageBackend,
)

Result = TypeVar("Result")

SETTINGS = (
    "url",
    "mount",
    "path_prefix",
    "namespace",
    "auth",
    "token_env",
    "token_file",
    "role_id",
    "secret_id_env",
    "secret_id_file",
    "approle_mount",
    "ca_bundle",
    "timeout",
    "max_versions",
)
PATH_RULE = re.compile(r"^[A-Za-z0-9_.@-]+(/[A-Za-z0-9_.@-]+)*$")
# An adoption prefix: whole segments and a partial last one, none of them `.` or `..` (the URL
# hvac builds would resolve them, and leave the mount).
ADOPTION_PREFIX = re.compile(r"^(?!(.*/)?\.\.?(/|$))([A-Za-z0-9_.@-]+/)*[A-Za-z0-9_.@-]*$")
# KV entries live in Vault's storage, whose entries are limited (512 KiB on Consul); values are
# stored base64-encoded when they are not text.
MAX_VALUE_BYTES = 256 * 1024
TEXT, BINARY = "value", "value_base64"


class VaultLogin:
    """How the backend gets a Vault token, again whenever Vault refuses the one it has."""

    def __init__(self, settings: BackendSettings) -> None:
        self._settings = settings
        self._method = settings.text("auth", "token")
        if self._method not in ("token", "approle"):
            raise settings.error("auth", "must be 'token' or 'approle'")
        if self._method == "approle":
            self._role_id = settings.required_text("role_id")
            self._mount = settings.text("approle_mount", "approle")
        self._credential()  # a missing variable or file stops the start

    def __call__(self, client: Any) -> None:
        secret = self._credential()
        if self._method == "approle":
            client.auth.approle.login(
                role_id=self._role_id, secret_id=secret, mount_point=self._mount
            )
        else:
            from hvac.utils import get_token_from_env

            client.token = secret or get_token_from_env()

    def _credential(self) -> str | None:
        if self._method == "approle":
            return self._settings.credential("secret_id", required=True)
        return self._settings.credential("token")


class VaultBackend(StorageBackend):
    capabilities = BackendCapabilities(
        max_value_bytes=MAX_VALUE_BYTES, native_versioning=True, native_soft_delete=False
    )

    def __init__(
        self,
        name: str,
        client: Any,
        login: Callable[[Any], None],
        mount: str,
        names: ExternalNames,
        max_versions: int,
    ) -> None:
        self.name = name
        self._client = client
        self._kv = client.secrets.kv.v2
        self._login = login
        self._logged_in = False
        self._mount = mount
        self._names = names
        self._max_versions = max_versions

    def put(self, key: VersionKey, value: SecretValue) -> str:
        check_size(value, MAX_VALUE_BYTES, self.name)
        path = self._names.for_secret(key.secret_id)
        text = text_of(value)
        data = {TEXT: text} if text is not None else {BINARY: _base64(value)}
        self._call(
            lambda: self._kv.update_metadata(
                path=path, max_versions=self._max_versions, mount_point=self._mount
            )
        )
        written = self._call(
            lambda: self._kv.create_or_update_secret(
                path=path, secret=data, mount_point=self._mount
            )
        )
        return str(Locator(path, str(written["data"]["version"]), key))

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        found = bound_locator(locator, key, self.name, self._names)
        version = self._kv_version(found)
        read = self._call(
            lambda: self._kv.read_secret_version(
                path=found.name,
                version=version,
                mount_point=self._mount,
                raise_on_deleted_version=True,
            )
        )
        return SecretValue(_decode(read["data"]["data"]))

    def destroy(self, key: VersionKey, locator: str) -> None:
        found = bound_locator(locator, key, self.name, self._names)
        version = self._kv_version(found)
        self._call(
            lambda: self._kv.destroy_secret_versions(
                path=found.name, versions=[version], mount_point=self._mount
            )
        )

    def purge(self, secret_id: uuid.UUID) -> None:
        path = self._names.for_secret(secret_id)
        self._call(
            lambda: self._kv.delete_metadata_and_all_versions(path=path, mount_point=self._mount)
        )

    def list_external(self, prefix: str) -> list[ExternalSecret]:
        if not ADOPTION_PREFIX.fullmatch(prefix):
            raise InvalidInput(
                "prefix is a path in the KV mount: names of letters, digits and _.@- "
                "separated by single slashes, none of them . or ..",
                details={"field": "prefix"},
            )
        folder = prefix.rpartition("/")[0]
        return adoptable(self._keys_under(folder, prefix), prefix, self._names, self._current)

    def health(self) -> BackendHealth:
        return timed_health(lambda: self._call(self._client.auth.token.lookup_self))

    def close(self) -> None:
        self._client.adapter.close()

    def _keys_under(self, folder: str, prefix: str) -> Iterator[str]:
        """Every key path in `folder` and its subfolders that starts with `prefix`."""
        try:
            listed = self._call(lambda: self._kv.list_secrets(path=folder, mount_point=self._mount))
        except NotFound:  # Vault answers 404 for an empty or missing folder
            return
        for entry in listed["data"]["keys"]:
            path = f"{folder}/{entry}" if folder else entry
            if entry.endswith("/"):
                if path.startswith(prefix) or prefix.startswith(path):
                    yield from self._keys_under(path.rstrip("/"), prefix)
            elif path.startswith(prefix):
                yield path

    def _current(self, path: str) -> str | None:
        """The key's current version, or None when that one is deleted or destroyed."""
        metadata = self._call(
            lambda: self._kv.read_secret_metadata(path=path, mount_point=self._mount)
        )["data"]
        current = metadata["current_version"]
        state = metadata["versions"].get(str(current), {})
        if not current or state.get("destroyed") or state.get("deletion_time"):
            return None
        return str(current)

    def _kv_version(self, locator: Locator) -> int:
        if not locator.native.isdigit():
            raise NotFound(f"backend '{self.name}': {locator.native!r} is not a KV version")
        return int(locator.native)

    def _call(self, operation: Callable[[], Result]) -> Result:
        """One hvac call; logs in first if needed, and once more if Vault refuses the token."""
        if not self._logged_in:
            self._authenticate()
        try:
            return call(operation, self._translate)
        except BackendAuthFailed:
            self._authenticate()
            return call(operation, self._translate)

    def _authenticate(self) -> None:
        call(lambda: self._login(self._client), self._translate)
        self._logged_in = True

    def _translate(self, error: Exception) -> ServiceError | None:
        from hvac import exceptions as vault

        if isinstance(error, vault.Unauthorized | vault.Forbidden):
            return BackendAuthFailed(self.name)
        if isinstance(error, vault.InvalidPath):
            return NotFound(f"backend '{self.name}' holds no such value (destroyed or missing)")
        if isinstance(error, vault.VaultError):
            return BackendUnavailable(self.name, f"Vault answered {type(error).__name__}")
        if isinstance(error, requests.RequestException):
            return BackendUnavailable(self.name, f"cannot reach Vault ({type(error).__name__})")
        return None


def vault_backend(name: str, settings: Mapping[str, Any], context: BackendContext) -> VaultBackend:
    import hvac

    options = BackendSettings(name, settings, SETTINGS)
    login = VaultLogin(options)
    path_prefix = (options.text("path_prefix", "secret-management") or "").strip("/")
    names = ExternalNames.checked(f"{path_prefix}/", PATH_RULE, options, "path_prefix")
    client = hvac.Client(
        url=options.required_text("url"),
        namespace=options.text("namespace"),
        verify=options.text("ca_bundle") or True,
        timeout=options.integer("timeout", 10, 1, 300),
    )
    quiet_sdk_loggers("hvac")
    return VaultBackend(
        name,
        client,
        login,
        mount=options.text("mount", "secret") or "secret",
        names=names,
        max_versions=options.integer("max_versions", 1000, 1, 1_000_000),
    )


@hookimpl
def secret_management_register_backends() -> list[BackendPlugin]:
    return [
        BackendPlugin(
            name="vault",
            factory=vault_backend,
            requires=("hvac",),
            extra="vault",
            description="HashiCorp Vault or OpenBao, KV version 2",
        )
    ]


def _base64(value: SecretValue) -> str:
    return base64.b64encode(value.reveal()).decode("ascii")


def _decode(data: Mapping[str, Any]) -> bytes:
    """The bytes a KV version holds: its `value` text, its `value_base64`, or all its fields."""
    if set(data) == {TEXT} and isinstance(data[TEXT], str):
        return str(data[TEXT]).encode("utf-8")
    if set(data) == {BINARY} and isinstance(data[BINARY], str):
        return base64.b64decode(data[BINARY])
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")
