"""Lifecycle endpoints: a version's state, rollback, rotation and the rotation policy.

Every write takes `If-Match` (the secret's ETag) and answers with the new one.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Response, g
from flask.views import MethodView

from core.domain.errors import BackendAuthFailed, Conflict, Forbidden, InvalidSecretValue
from core.domain.secrets import Secret, SecretVersion
from core.rotation import RotationService
from core.rotation_policies import PolicyDraft
from core.versions import VersionService
from entrypoints.http import examples
from entrypoints.http.blueprint import IF_MATCH, Blueprint, operation_id, raises
from entrypoints.http.context import current_container, expected_revision, set_etag
from entrypoints.http.schemas.secrets import SecretSchema
from entrypoints.http.schemas.versions import (
    RollbackSchema,
    RotateSchema,
    RotationPolicyInputSchema,
    RotationPolicySchema,
    VersionSchema,
)
from entrypoints.http.secrets import VERSION, decode_value, with_etag, writes

blp = Blueprint(
    "lifecycle",
    __name__,
    url_prefix="/api/v1",
    description="Lifecycle: version states, rollback, rotation and rotation policies.",
)

ETAG = {"ETag": {"schema": {"type": "string"}, "description": "The secret's new revision."}}


def versions() -> VersionService:
    return current_container().version_service()


def rotation() -> RotationService:
    return current_container().rotation_service()


def version_changed(change: tuple[Secret, SecretVersion]) -> SecretVersion:
    secret, record = change
    set_etag(secret.revision)
    return record


@blp.route(f"/secrets/<uuid:secret_id>/versions/{VERSION}/disable")
class VersionDisable(MethodView):
    @blp.response(200, VersionSchema, headers=ETAG)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden, Conflict)
    @operation_id("disable_version")
    def post(self, secret_id: UUID, version: int) -> Any:
        """Stop serving a version (not the current or a pending one); it can be enabled again."""
        return version_changed(
            versions().disable(
                g.principal, secret_id, version, expected_revision=expected_revision()
            )
        )


@blp.route(f"/secrets/<uuid:secret_id>/versions/{VERSION}/enable")
class VersionEnable(MethodView):
    @blp.response(200, VersionSchema, headers=ETAG)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden, Conflict)
    @operation_id("enable_version")
    def post(self, secret_id: UUID, version: int) -> Any:
        """Serve a disabled version again (also one whose grace period after a rotation ended)."""
        return version_changed(
            versions().enable(
                g.principal, secret_id, version, expected_revision=expected_revision()
            )
        )


@blp.route(f"/secrets/<uuid:secret_id>/versions/{VERSION}/destroy")
class VersionDestroy(MethodView):
    @blp.response(200, VersionSchema, headers=ETAG)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden, Conflict, BackendAuthFailed)
    @operation_id("destroy_version")
    def post(self, secret_id: UUID, version: int) -> Any:
        """Remove a version's value from its backend for good; the version's row stays."""
        return version_changed(
            versions().destroy(
                g.principal, secret_id, version, expected_revision=expected_revision()
            )
        )


@blp.route("/secrets/<uuid:secret_id>/rollback")
class SecretRollback(MethodView):
    @blp.arguments(RollbackSchema(), example=examples.ROLLBACK)
    @blp.response(201, SecretSchema, headers=ETAG, example=examples.SECRET_WRITTEN)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden, Conflict, InvalidSecretValue, BackendAuthFailed)
    @operation_id("rollback_secret")
    def post(self, data: dict[str, Any], secret_id: UUID) -> Any:
        """Make an old version's value current again, as a new version."""
        secret = writes().rollback(
            g.principal, secret_id, data["version"], expected_revision=expected_revision()
        )
        return with_etag(secret)


@blp.route("/secrets/<uuid:secret_id>/rotate")
class SecretRotate(MethodView):
    @blp.arguments(RotateSchema(), example=examples.ROTATE)
    @blp.response(201, SecretSchema, headers=ETAG, example=examples.SECRET_WRITTEN)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden, Conflict, InvalidSecretValue, BackendAuthFailed)
    @operation_id("rotate_secret")
    def post(self, data: dict[str, Any], secret_id: UUID) -> Any:
        """Rotate now, to the value given or to one the policy's rotator makes: pending, tested
        (a webhook rotator asks its configured target), then current; the old version stays
        readable as `previous` for the grace period. 502 `rotation_failed` if the target refused
        or could not be reached, or the policy cannot run: the current value stays."""
        value = decode_value(data) if data["value"] is not None else None
        secret = rotation().rotate(
            g.principal,
            secret_id,
            value,
            expected_revision=expected_revision(),
            expires_at=data["expires_at"],
            not_before=data["not_before"],
        )
        return with_etag(secret)


@blp.route("/secrets/<uuid:secret_id>/rotation-policy")
class SecretRotationPolicy(MethodView):
    @blp.response(200, RotationPolicySchema, example=examples.ROTATION_POLICY)
    def get(self, secret_id: UUID) -> Any:
        """The secret's rotation policy, with its next and last runs."""
        return rotation().get_policy(g.principal, secret_id)

    @blp.arguments(RotationPolicyInputSchema(), example=examples.ROTATION_POLICY_INPUT)
    @blp.response(200, RotationPolicySchema, headers=ETAG, example=examples.ROTATION_POLICY)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden)
    def put(self, data: dict[str, Any], secret_id: UUID) -> Any:
        """Set the policy: `interval_seconds` or `cron`, a `rotator` and its `settings`. The
        `webhook` rotator's settings name a configured rotation `target` (never a URL or a key),
        and attaching it takes the admin role at the secret's scope (403 otherwise)."""
        secret, policy = rotation().set_policy(
            g.principal, secret_id, PolicyDraft(**data), expected_revision=expected_revision()
        )
        set_etag(secret.revision)
        return policy

    @blp.response(204, headers=ETAG)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden)
    def delete(self, secret_id: UUID) -> Any:
        """Stop rotating the secret on a schedule."""
        secret = rotation().delete_policy(
            g.principal, secret_id, expected_revision=expected_revision()
        )
        set_etag(secret.revision)
        return Response(status=204)
