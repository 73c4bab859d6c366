"""The `gcp` backend: Google Cloud Secret Manager, through google-cloud-secret-manager.

One Secret Manager secret per secret, `projects/<project>/secrets/<prefix><secret uuid>`
(created on its first write), one Secret Manager version per secret version; the locator pins
the version number. Payloads are bytes, stored as they are. `destroy` destroys that version for
good, `purge` deletes the secret with every version.

Credentials: Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, workload
identity, the metadata server), or the service account key file `credentials_file`; `anonymous`
is for emulators only. `api_endpoint` and `transport` (`grpc` or `rest`) reach regional endpoints
and emulators. The SDK is imported only when an instance is built, so a missing SDK never breaks
discovery.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests

from core.domain.errors import (
    BackendAuthFailed,
    BackendUnavailable,
    Conflict,
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
    "project",
    "prefix",
    "api_endpoint",
    "transport",
    "credentials_file",
    "anonymous",
    "timeout",
)
NAME_RULE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
MAX_VALUE_BYTES = 65536


class GcpSecretManagerBackend(StorageBackend):
    capabilities = BackendCapabilities(
        max_value_bytes=MAX_VALUE_BYTES, native_versioning=True, native_soft_delete=False
    )

    def __init__(
        self, name: str, client: Any, project: str, names: ExternalNames, timeout: float
    ) -> None:
        self.name = name
        self._client = client
        self._parent = f"projects/{project}"
        self._names = names
        self._timeout = timeout

    def put(self, key: VersionKey, value: SecretValue) -> str:
        check_size(value, MAX_VALUE_BYTES, self.name)
        secret_id = self._names.for_secret(key.secret_id)
        parent, payload = self._path(secret_id), {"data": value.reveal()}
        try:
            added = self._request(self._client.add_secret_version, parent=parent, payload=payload)
        except NotFound:  # the first version: create the secret, then add it
            self._create(secret_id)
            added = self._request(self._client.add_secret_version, parent=parent, payload=payload)
        return str(Locator(secret_id, added.name.rsplit("/", 1)[-1], key))

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        found = bound_locator(locator, key, self.name, self._names)
        accessed = self._request(self._client.access_secret_version, name=self._version_path(found))
        return SecretValue(accessed.payload.data)

    def destroy(self, key: VersionKey, locator: str) -> None:
        found = bound_locator(locator, key, self.name, self._names)
        try:
            self._request(self._client.destroy_secret_version, name=self._version_path(found))
        except NotFound:
            pass  # destroyed already, or its secret is gone

    def purge(self, secret_id: uuid.UUID) -> None:
        try:
            self._request(
                self._client.delete_secret, name=self._path(self._names.for_secret(secret_id))
            )
        except NotFound:
            pass  # purged already

    def list_external(self, prefix: str) -> list[ExternalSecret]:
        listed = self._call(
            lambda: [item.name for item in self._client.list_secrets(parent=self._parent)]
        )
        return adoptable(
            [path.rsplit("/", 1)[-1] for path in listed], prefix, self._names, self._current
        )

    def health(self) -> BackendHealth:
        first_page = {"parent": self._parent, "page_size": 1}
        return timed_health(
            lambda: self._call(
                lambda: next(iter(self._client.list_secrets(first_page).pages), None)
            )
        )

    def close(self) -> None:
        self._client.transport.close()

    def _create(self, secret_id: str) -> None:
        secret = {"replication": {"automatic": {}}, "labels": {"managed-by": "secret-management"}}
        try:
            self._request(
                self._client.create_secret, parent=self._parent, secret_id=secret_id, secret=secret
            )
        except Conflict:
            pass  # a concurrent first write created it

    def _current(self, secret_id: str) -> str | None:
        """The number of the secret's latest enabled version, or None when it has none."""
        try:
            latest = self._request(
                self._client.get_secret_version, name=f"{self._path(secret_id)}/versions/latest"
            )
        except NotFound:
            return None
        return str(latest.name.rsplit("/", 1)[-1])

    def _path(self, secret_id: str) -> str:
        return f"{self._parent}/secrets/{secret_id}"

    def _version_path(self, locator: Locator) -> str:
        if not locator.native.isdigit():
            raise NotFound(f"backend '{self.name}': {locator.native!r} is not a version number")
        return f"{self._path(locator.name)}/versions/{locator.native}"

    def _request(self, method: Callable[..., Result], **fields: Any) -> Result:
        """One RPC with its request fields, within the configured timeout."""
        return self._call(lambda: method(request=fields, timeout=self._timeout))

    def _call(self, operation: Callable[[], Result]) -> Result:
        return call(operation, self._translate)

    def _translate(self, error: Exception) -> ServiceError | None:
        from google.api_core import exceptions as google
        from google.auth import exceptions as auth

        if isinstance(error, google.NotFound):
            return NotFound(f"backend '{self.name}' holds no such value")
        if isinstance(error, google.AlreadyExists):
            return Conflict(f"backend '{self.name}': that secret exists already")
        if _failed_precondition(error):
            return NotFound(f"backend '{self.name}': that version is destroyed or disabled")
        if isinstance(
            error, google.PermissionDenied | google.Unauthenticated | auth.GoogleAuthError
        ):
            return BackendAuthFailed(self.name)
        if isinstance(error, google.GoogleAPIError):
            return BackendUnavailable(self.name, f"Secret Manager answered {type(error).__name__}")
        if isinstance(error, requests.RequestException):
            return BackendUnavailable(
                self.name, f"cannot reach Secret Manager ({type(error).__name__})"
            )
        return None


def gcp_backend(
    name: str, settings: Mapping[str, Any], context: BackendContext
) -> GcpSecretManagerBackend:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.secretmanager import SecretManagerServiceClient
    from google.oauth2 import service_account

    options = BackendSettings(name, settings, SETTINGS)
    names = ExternalNames.checked(
        options.text("prefix", "secret-management-") or "", NAME_RULE, options
    )
    transport = options.text("transport", "grpc")
    if transport not in ("grpc", "rest"):
        raise options.error("transport", "must be 'grpc' or 'rest'")
    credentials_file = options.text("credentials_file")
    credentials = None
    if options.flag("anonymous", False):
        if credentials_file:
            raise options.error("anonymous", "give either anonymous or credentials_file")
        credentials = AnonymousCredentials()
    elif credentials_file:
        try:
            credentials = service_account.Credentials.from_service_account_file(credentials_file)
        except (OSError, ValueError) as error:
            problem = f"is not a usable service account key ({type(error).__name__})"
            raise options.error("credentials_file", problem) from None
    endpoint = options.text("api_endpoint")
    client = SecretManagerServiceClient(
        credentials=credentials,
        transport=transport,
        client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
    )
    quiet_sdk_loggers("google", "grpc")
    return GcpSecretManagerBackend(
        name,
        client,
        options.required_text("project"),
        names,
        options.integer("timeout", 10, 1, 300),
    )


@hookimpl
def secret_management_register_backends() -> list[BackendPlugin]:
    return [
        BackendPlugin(
            name="gcp",
            factory=gcp_backend,
            requires=("google.cloud.secretmanager",),
            extra="gcp",
            description="Google Cloud Secret Manager",
        )
    ]


def _failed_precondition(error: Exception) -> bool:
    """A version that is not enabled: FAILED_PRECONDITION over gRPC, a 400 carrying it over REST."""
    from google.api_core import exceptions as google

    if isinstance(error, google.FailedPrecondition):
        return True
    if not isinstance(error, google.BadRequest) or error.response is None:
        return False
    try:
        return bool(error.response.json()["error"]["status"] == "FAILED_PRECONDITION")
    except (KeyError, TypeError, ValueError):
        return False
