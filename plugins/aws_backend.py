"""The `aws` backend: AWS Secrets Manager, through boto3.

AWS can neither delete nor disable one version of a secret, so each version is its own AWS
secret, `<prefix><secret uuid>/<version>/<nonce>` (the nonce keeps a retried or concurrent write
from ever reusing a name AWS may still hold for deletion). `destroy` deletes that AWS secret
without a recovery window; `purge` deletes every AWS secret under `<prefix><secret uuid>/`. The
locator pins the AWS version id as well. Text is stored as `SecretString`, other bytes as
`SecretBinary`; AWS refuses an empty value, so the empty value is an AWS secret without any
version (and an empty version id in the locator). An adopted AWS secret is read at the version
that was current when it was adopted; destroying it deletes that AWS secret.

Credentials come from boto3's standard chain (environment, shared files and `profile`, container
and instance roles), or from `access_key_id_env` / `secret_access_key_env` (or `_file`) naming
where they are. `endpoint_url` points at another endpoint (a VPC endpoint, a test server).
boto3 is imported only when an instance is built, so a missing SDK never breaks discovery.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
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

Result = TypeVar("Result")

SETTINGS = (
    "region",
    "endpoint_url",
    "profile",
    "prefix",
    "kms_key_id",
    "access_key_id_env",
    "access_key_id_file",
    "secret_access_key_env",
    "secret_access_key_file",
    "session_token_env",
    "session_token_file",
    "timeout",
    "retries",
)
NAME_RULE = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
MAX_VALUE_BYTES = 65536
NOT_FOUND = frozenset({"ResourceNotFoundException", "InvalidRequestException"})
AUTH_FAILED = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredTokenException",
    }
)


def _version_suffix(version: int) -> str:
    return f"/{version}/{secrets.token_hex(4)}"


class AwsSecretsManagerBackend(StorageBackend):
    capabilities = BackendCapabilities(
        max_value_bytes=MAX_VALUE_BYTES, native_versioning=False, native_soft_delete=False
    )

    def __init__(self, name: str, client: Any, names: ExternalNames, kms_key_id: str | None):
        self.name = name
        self._client = client
        self._names = names
        self._kms_key_id = {"KmsKeyId": kms_key_id} if kms_key_id else {}

    def put(self, key: VersionKey, value: SecretValue) -> str:
        check_size(value, MAX_VALUE_BYTES, self.name)
        name = self._names.for_secret(key.secret_id) + _version_suffix(key.version)
        text = text_of(value)
        payload = {"SecretString": text} if text else {"SecretBinary": value.reveal()}
        created = self._call(
            lambda: self._client.create_secret(
                Name=name,
                Description=f"secret-management: secret {key.secret_id} version {key.version}",
                **self._kms_key_id,
                **(payload if value else {}),
            )
        )
        return str(Locator(name, created.get("VersionId", ""), key))

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        found = bound_locator(locator, key, self.name, self._names)
        if not found.native:  # the empty value: the AWS secret exists, without a version
            self._call(lambda: self._client.describe_secret(SecretId=found.name))
            return SecretValue(b"")
        read = self._call(
            lambda: self._client.get_secret_value(SecretId=found.name, VersionId=found.native)
        )
        if "SecretBinary" in read:
            return SecretValue(read["SecretBinary"])
        return SecretValue.from_text(read["SecretString"])

    def destroy(self, key: VersionKey, locator: str) -> None:
        found = bound_locator(locator, key, self.name, self._names)
        self._delete(found.name)

    def purge(self, secret_id: uuid.UUID) -> None:
        for listed in self._listed(f"{self._names.for_secret(secret_id)}/", planned=True):
            self._delete(listed["Name"])

    def list_external(self, prefix: str) -> list[ExternalSecret]:
        current = {
            listed["Name"]: version_id
            for listed in self._listed(prefix, planned=False)
            for version_id, stages in listed.get("SecretVersionsToStages", {}).items()
            if "AWSCURRENT" in stages
        }
        return adoptable(current, prefix, self._names, current.get)

    def health(self) -> BackendHealth:
        return timed_health(
            lambda: self._call(
                lambda: self._client.list_secrets(MaxResults=1, **_name_filter(self._names.prefix))
            )
        )

    def close(self) -> None:
        self._client.close()

    def _listed(self, prefix: str, *, planned: bool) -> Iterator[dict[str, Any]]:
        """The AWS secrets whose names start with `prefix` (AWS matches case-insensitively)."""
        pages = self._client.get_paginator("list_secrets").paginate(
            IncludePlannedDeletion=planned, **_name_filter(prefix)
        )
        listed = self._call(lambda: [item for page in pages for item in page["SecretList"]])
        return (item for item in listed if item["Name"].startswith(prefix))

    def _delete(self, name: str) -> None:
        try:
            self._call(
                lambda: self._client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
            )
        except NotFound:
            pass  # deleted already

    def _call(self, operation: Callable[[], Result]) -> Result:
        return call(operation, self._translate)

    def _translate(self, error: Exception) -> ServiceError | None:
        from botocore import exceptions as aws

        if isinstance(error, aws.ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in NOT_FOUND:
                return NotFound(f"backend '{self.name}' holds no such value ({code})")
            if code in AUTH_FAILED or status in (401, 403):
                return BackendAuthFailed(self.name)
            return BackendUnavailable(self.name, f"AWS answered {code or status}")
        if isinstance(error, aws.NoCredentialsError | aws.PartialCredentialsError):
            return BackendAuthFailed(self.name)
        if isinstance(error, aws.BotoCoreError):
            return BackendUnavailable(self.name, f"cannot reach AWS ({type(error).__name__})")
        return None


def aws_backend(
    name: str, settings: Mapping[str, Any], context: BackendContext
) -> AwsSecretsManagerBackend:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError, ProfileNotFound

    options = BackendSettings(name, settings, SETTINGS)
    names = ExternalNames.checked(
        options.text("prefix", "secret-management/") or "",
        NAME_RULE,
        options,
        suffix=_version_suffix,
    )
    access_key = options.credential("access_key_id")
    secret_key = options.credential("secret_access_key", required=access_key is not None)
    timeout = options.integer("timeout", 10, 1, 300)
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "max_attempts": options.integer("retries", 2, 0, 10) + 1},
    )
    try:
        session = boto3.session.Session(
            profile_name=options.text("profile"),
            region_name=options.text("region"),
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=options.credential("session_token"),
        )
        client = session.client(
            "secretsmanager", endpoint_url=options.text("endpoint_url"), config=config
        )
    except ProfileNotFound:
        raise options.error("profile", "no such profile in the AWS configuration") from None
    except NoRegionError:
        raise options.error("region", "is required (or AWS_REGION in the environment)") from None
    quiet_sdk_loggers("botocore", "boto3")
    return AwsSecretsManagerBackend(name, client, names, options.text("kms_key_id"))


@hookimpl
def secret_management_register_backends() -> list[BackendPlugin]:
    return [
        BackendPlugin(
            name="aws",
            factory=aws_backend,
            requires=("boto3",),
            extra="aws",
            description="AWS Secrets Manager",
        )
    ]


def _name_filter(prefix: str) -> dict[str, Any]:
    return {"Filters": [{"Key": "name", "Values": [prefix]}]} if prefix else {}
