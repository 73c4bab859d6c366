"""The `azure` backend: Azure Key Vault secrets, through azure-keyvault-secrets and azure-identity.

One Key Vault secret per secret, `<prefix><secret uuid>`, one Key Vault version per secret
version; the locator pins the version id. Key Vault holds text only: text is stored as it is
(content type `text/plain; charset=utf-8`), other bytes base64-encoded (content type
`application/octet-stream; base64`); any other content type (an adopted secret) reads as text.
Key Vault cannot delete one version, so `destroy` disables it (it can no longer be read; the
value stays in the vault, disabled, until the secret is purged). `purge` deletes the secret and
purges it; when the vault refuses the purge (purge protection), the deleted secret stays
recoverable until Key Vault purges it at the end of its retention.

Credentials: a service principal (`tenant_id`, `client_id`, `client_secret_env` or
`client_secret_file`), else azure-identity's `DefaultAzureCredential` chain (environment,
workload identity, managed identity, Azure CLI). `authority_host` and
`disable_instance_discovery` serve sovereign and private clouds, `ca_bundle` a private CA.
The SDKs are imported only when an instance is built, so a missing SDK never breaks discovery.
"""

from __future__ import annotations

import base64
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from core.domain.errors import BackendAuthFailed, BackendUnavailable, NotFound, ServiceError
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

log = logging.getLogger(__name__)
Result = TypeVar("Result")

SETTINGS = (
    "vault_url",
    "prefix",
    "tenant_id",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "authority_host",
    "disable_instance_discovery",
    "ca_bundle",
    "verify_challenge_resource",
    "timeout",
    "retries",
)
NAME_RULE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
# Key Vault holds 25 KB per value; base64 leaves room for 18 KiB of any bytes.
MAX_VALUE_BYTES = 18 * 1024
TEXT = "text/plain; charset=utf-8"
BASE64 = "application/octet-stream; base64"


class AzureKeyVaultBackend(StorageBackend):
    capabilities = BackendCapabilities(
        max_value_bytes=MAX_VALUE_BYTES, native_versioning=True, native_soft_delete=True
    )

    def __init__(self, name: str, client: Any, credential: Any, names: ExternalNames) -> None:
        self.name = name
        self._client = client
        self._credential = credential
        self._names = names

    def put(self, key: VersionKey, value: SecretValue) -> str:
        check_size(value, MAX_VALUE_BYTES, self.name)
        name = self._names.for_secret(key.secret_id)
        text = text_of(value)
        stored, content_type = (
            (text, TEXT)
            if text is not None
            else (base64.b64encode(value.reveal()).decode(), BASE64)
        )
        written = self._call(
            lambda: self._client.set_secret(name, stored, content_type=content_type)
        )
        return str(Locator(name, written.properties.version, key))

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        found = bound_locator(locator, key, self.name, self._names)
        secret = self._call(lambda: self._client.get_secret(found.name, found.native))
        if secret.properties.content_type == BASE64:
            return SecretValue(base64.b64decode(secret.value or ""))
        return SecretValue.from_text(secret.value or "")

    def destroy(self, key: VersionKey, locator: str) -> None:
        found = bound_locator(locator, key, self.name, self._names)
        try:
            self._call(
                lambda: self._client.update_secret_properties(
                    found.name, found.native, enabled=False
                )
            )
        except NotFound:
            pass  # gone already

    def purge(self, secret_id: uuid.UUID) -> None:
        name = self._names.for_secret(secret_id)
        try:
            self._call(lambda: self._client.begin_delete_secret(name).wait())
        except NotFound:
            pass  # deleted already, maybe not purged yet
        try:
            self._call(lambda: self._client.purge_deleted_secret(name))
        except NotFound:
            pass  # purged already
        except BackendAuthFailed:
            log.warning(
                "backend '%s': the vault refused to purge %s (purge protection?); it stays "
                "deleted and recoverable until Key Vault purges it",
                self.name,
                name,
            )

    def list_external(self, prefix: str) -> list[ExternalSecret]:
        listed = self._call(
            lambda: [item.name for item in self._client.list_properties_of_secrets()]
        )
        return adoptable(listed, prefix, self._names, self._current)

    def health(self) -> BackendHealth:
        return timed_health(
            lambda: self._call(
                lambda: next(iter(self._client.list_properties_of_secrets().by_page()), None)
            )
        )

    def close(self) -> None:
        self._client.close()
        self._credential.close()

    def _current(self, name: str) -> str | None:
        """The secret's current version, or None when it is disabled (or deleted since)."""
        try:
            return str(self._call(lambda: self._client.get_secret(name)).properties.version)
        except NotFound:
            return None

    def _call(self, operation: Callable[[], Result]) -> Result:
        return call(operation, self._translate)

    def _translate(self, error: Exception) -> ServiceError | None:
        from azure.core import exceptions as azure

        if isinstance(error, azure.ResourceNotFoundError):
            return NotFound(f"backend '{self.name}' holds no such value")
        if isinstance(error, azure.ClientAuthenticationError):
            return BackendAuthFailed(self.name)
        if isinstance(error, azure.HttpResponseError):
            if _inner_code(error) == "SecretDisabled":
                return NotFound(f"backend '{self.name}': that version is disabled (destroyed)")
            if error.status_code in (401, 403):
                return BackendAuthFailed(self.name)
            return BackendUnavailable(self.name, f"Key Vault answered HTTP {error.status_code}")
        if isinstance(error, azure.AzureError):
            return BackendUnavailable(self.name, f"cannot reach Key Vault ({type(error).__name__})")
        return None


def azure_backend(
    name: str, settings: Mapping[str, Any], context: BackendContext
) -> AzureKeyVaultBackend:
    from azure.identity import ClientSecretCredential, DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    options = BackendSettings(name, settings, SETTINGS)
    names = ExternalNames.checked(
        options.text("prefix", "secret-management-") or "", NAME_RULE, options
    )
    transport: dict[str, Any] = {"connection_timeout": options.integer("timeout", 10, 1, 300)}
    transport["read_timeout"] = transport["connection_timeout"]
    if options.text("ca_bundle"):
        transport["connection_verify"] = options.text("ca_bundle")
    identity: dict[str, Any] = {
        "disable_instance_discovery": options.flag("disable_instance_discovery", False),
        **transport,
    }
    if options.text("authority_host"):
        identity["authority"] = options.text("authority_host")
    client_id = options.text("client_id")
    if client_id:
        credential = ClientSecretCredential(
            options.required_text("tenant_id"),
            client_id,
            options.credential("client_secret", required=True),
            **identity,
        )
    else:
        credential = DefaultAzureCredential(**identity)
    client = SecretClient(
        options.required_text("vault_url"),
        credential,
        verify_challenge_resource=options.flag("verify_challenge_resource", True),
        retry_total=options.integer("retries", 2, 0, 10),
        **transport,
    )
    quiet_sdk_loggers("azure", "msal")
    return AzureKeyVaultBackend(name, client, credential, names)


@hookimpl
def secret_management_register_backends() -> list[BackendPlugin]:
    return [
        BackendPlugin(
            name="azure",
            factory=azure_backend,
            requires=("azure.keyvault.secrets", "azure.identity"),
            extra="azure",
            description="Azure Key Vault secrets",
        )
    ]


def _inner_code(error: Any) -> str | None:
    """Key Vault's inner error code (`SecretDisabled`...), from the error body it answered."""
    try:
        return error.response.json()["error"]["innererror"]["code"]  # type: ignore[no-any-return]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
