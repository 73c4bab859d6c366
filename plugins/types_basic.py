"""The basic secret types: `generic`, `api_key`, `oauth_token` and `username_password`."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from core.domain.values import SecretValue
from plugins.hookspecs import hookimpl
from plugins.secret_type_support import SchemaType, value_text
from ports.types import SecretType, TypeCheck

ONE_TOKEN = validate.Regexp(r"^\S+$", error="must be one token, without spaces or line breaks")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class GenericType(SecretType):
    """Any value: text, a JSON document, or bytes."""

    name = "generic"
    description = "any value: text, a JSON object, or bytes (base64 over the API)"

    def validate(self, value: SecretValue) -> TypeCheck:
        return TypeCheck()

    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        text = value_text(value)
        if text is None:
            raise ValueError("a binary value cannot be an environment variable")
        return {variable: text}


class ApiKeySchema(StrictSchema):
    api_key = fields.String(required=True, validate=[validate.Length(1, 4096), ONE_TOKEN])
    base_url = fields.URL(schemes={"http", "https"})


class ApiKeyType(SchemaType):
    name = "api_key"
    description = "an API key or token (text), optionally with the base URL it is for"
    schema = ApiKeySchema
    text_field = "api_key"
    sensitive_fields = frozenset({"api_key"})


class OAuthTokenSchema(StrictSchema):
    access_token = fields.String(required=True, validate=[validate.Length(1, 16384), ONE_TOKEN])
    refresh_token = fields.String(validate=[validate.Length(1, 16384), ONE_TOKEN])
    token_type = fields.String(validate=validate.Length(1, 64))
    token_url = fields.URL(schemes={"https", "http"})
    client_id = fields.String(validate=validate.Length(1, 256))
    scope = fields.String(validate=validate.Length(max=2048))
    expires_at = fields.AwareDateTime()

    @validates_schema
    def _refreshable(self, data: dict[str, Any], **_: Any) -> None:
        if "refresh_token" in data and "token_url" not in data:
            raise ValidationError("a refresh token needs the token_url to use it", "token_url")


class OAuthTokenType(SchemaType):
    name = "oauth_token"
    description = "an OAuth access token, with its refresh token, token URL and expiry"
    schema = OAuthTokenSchema
    sensitive_fields = frozenset({"access_token", "refresh_token"})


class UsernamePasswordSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(1, 256))
    password = fields.String(required=True, validate=validate.Length(1, 4096))
    url = fields.URL(require_tld=False)


class UsernamePasswordType(SchemaType):
    name = "username_password"
    description = "a username and its password, optionally with the URL they log in to"
    schema = UsernamePasswordSchema
    sensitive_fields = frozenset({"password"})


@hookimpl
def secret_management_register_secret_types() -> list[SecretType]:
    return [GenericType(), ApiKeyType(), OAuthTokenType(), UsernamePasswordType()]
