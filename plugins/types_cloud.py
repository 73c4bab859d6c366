"""Cloud credential secret types: `aws_credentials`, `azure_service_principal` and
`gcp_service_account`. Each renders as the environment variables its provider's SDKs read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from core.domain.values import SecretValue
from plugins.hookspecs import hookimpl
from plugins.secret_type_support import Fields, SchemaType, problem, value_text
from ports.types import SecretType, TypeCheck


class AwsCredentialsSchema(Schema):
    class Meta:
        unknown = RAISE

    access_key_id = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^(AKIA|ASIA)[A-Z0-9]{16}$", error="is not an AWS access key id (AKIA…/ASIA…)"
        ),
    )
    secret_access_key = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9/+=]{40}$", error="is not 40 characters of base64"),
    )
    session_token = fields.String(validate=validate.Length(1, 8192))
    region = fields.String(
        validate=validate.Regexp(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$", error="is not an AWS region")
    )

    @validates_schema
    def _temporary_needs_token(self, data: dict[str, Any], **_: Any) -> None:
        temporary = data.get("access_key_id", "").startswith("ASIA")
        if temporary and "session_token" not in data:
            raise ValidationError(
                "temporary credentials (ASIA…) need their session token", "session_token"
            )


class AwsCredentialsType(SchemaType):
    name = "aws_credentials"
    description = "an AWS access key (id and secret), optionally a session token and region"
    schema = AwsCredentialsSchema
    sensitive_fields = frozenset({"secret_access_key", "session_token"})
    variables: ClassVar[Mapping[str, str]] = {
        "access_key_id": "AWS_ACCESS_KEY_ID",
        "secret_access_key": "AWS_SECRET_ACCESS_KEY",
        "session_token": "AWS_SESSION_TOKEN",
        "region": "AWS_DEFAULT_REGION",
    }


class AzureServicePrincipalSchema(Schema):
    class Meta:
        unknown = RAISE

    tenant_id = fields.UUID(required=True)
    client_id = fields.UUID(required=True)
    client_secret = fields.String(required=True, validate=validate.Length(1, 1024))
    subscription_id = fields.UUID()
    authority_host = fields.URL(schemes={"https"})


class AzureServicePrincipalType(SchemaType):
    name = "azure_service_principal"
    description = "an Azure service principal: tenant, client id and client secret"
    schema = AzureServicePrincipalSchema
    sensitive_fields = frozenset({"client_secret"})
    variables: ClassVar[Mapping[str, str]] = {
        "tenant_id": "AZURE_TENANT_ID",
        "client_id": "AZURE_CLIENT_ID",
        "client_secret": "AZURE_CLIENT_SECRET",
        "subscription_id": "AZURE_SUBSCRIPTION_ID",
        "authority_host": "AZURE_AUTHORITY_HOST",
    }


class GcpServiceAccountSchema(Schema):
    """The fields of a service account's JSON key file that a client needs. Google adds fields
    over time (`universe_domain`…): unknown ones are kept as they are, not refused."""

    class Meta:
        unknown = EXCLUDE

    type = fields.String(
        required=True, validate=validate.Equal("service_account", error="must be service_account")
    )
    project_id = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", error="is not a Google Cloud project id"
        ),
    )
    private_key_id = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9a-f]{40}$", error="is not a key id (40 hex digits)"),
    )
    private_key = fields.String(required=True, validate=validate.Length(1, 16384))
    client_email = fields.Email(required=True)
    client_id = fields.String(
        required=True, validate=validate.Regexp(r"^\d{1,32}$", error="is not a numeric id")
    )
    token_uri = fields.URL(required=True, schemes={"https"})


class GcpServiceAccountType(SchemaType):
    """A service account's JSON key file, as Google issues it. As environment variables: the
    file's JSON in `<VARIABLE>` and its project in `GOOGLE_CLOUD_PROJECT`."""

    name = "gcp_service_account"
    description = "a Google Cloud service account's JSON key file"
    schema = GcpServiceAccountSchema
    sensitive_fields = frozenset({"private_key"})

    def inspect(self, fields: Fields) -> TypeCheck:
        try:
            serialization.load_pem_private_key(fields["private_key"].encode(), None)
        except (TypeError, ValueError, UnsupportedAlgorithm):
            return problem("private_key", "is not an unencrypted PEM private key")
        metadata = {name: fields[name] for name in ("project_id", "client_email", "private_key_id")}
        return TypeCheck(metadata=metadata)

    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        fields = self.valid_fields(value)
        text = value_text(value)
        if text is None:  # a loaded value is text: this is for the type checker
            raise ValueError("the value is not a valid gcp_service_account")
        return {variable: text, "GOOGLE_CLOUD_PROJECT": fields["project_id"]}


@hookimpl
def secret_management_register_secret_types() -> list[SecretType]:
    return [AwsCredentialsType(), AzureServicePrincipalType(), GcpServiceAccountType()]
