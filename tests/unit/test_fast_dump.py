"""The list endpoint's hand-written serializer answers exactly what `SecretSchema` does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import Schema

from core.domain.paging import Page
from core.domain.secrets import ListPosition, Secret
from core.domain.values import ScopeRef, ScopeType
from entrypoints.http.cursor import encode_cursor
from entrypoints.http.schemas.resolve import ResolutionSchema
from entrypoints.http.schemas.secrets import SecretPageSchema, SecretSchema, dump_secret
from entrypoints.http.schemas.values import SecretValueSchema

NOW = datetime(2026, 11, 29, 1, 2, 3, 456789, tzinfo=UTC)


def varied() -> list[Secret]:
    plain = Secret(
        id=uuid.uuid4(),
        scope=ScopeRef.global_scope(),
        name="PLAIN",
        backend="local",
        created_at=NOW,
        created_by="user:alice",
    )
    full = Secret(
        id=uuid.uuid4(),
        scope=ScopeRef(ScopeType.PROJECT, "p-42"),
        name="DB_URL",
        backend="vault",
        created_at=NOW.replace(microsecond=0),
        created_by="service:ci",
        environment="production",
        type="connection_string",
        description="the primary's URL, ünïcode",
        tags={"team": "payments", "tier": "1"},
        consumer="ci",
        current_version=3,
        expires_at=NOW + timedelta(days=30),
        not_before=NOW - timedelta(days=1),
        max_versions=5,
        updated_at=NOW + timedelta(seconds=1),
        updated_by="user:bob",
        deleted_at=NOW + timedelta(hours=1),
        purge_after=NOW + timedelta(days=30, hours=1),
        revision=7,
        latest_version=4,
        previous_version=2,
        pending_version=4,
    )
    personal = Secret(
        id=uuid.uuid4(),
        scope=ScopeRef(ScopeType.USER, "alice"),
        name="MY_TOKEN",
        backend="local",
        created_at=NOW,
        created_by="user:alice",
        tags={},
    )
    return [plain, full, personal]


@pytest.mark.parametrize("secret", varied(), ids=["plain", "full", "personal"])
def test_dump_secret_is_the_schema_s_answer(secret: Secret) -> None:
    assert dump_secret(secret) == SecretSchema().dump(secret)


def test_a_page_dumps_as_the_generic_schema_would() -> None:
    page = Page(items=varied(), total=42, page=2, page_size=3)
    generic = {
        "page": 2,
        "page_size": 3,
        "total": 42,
        "next": encode_cursor(ListPosition.of(page.items[-1])),  # 2 pages of 3 before 42
        "items": [SecretSchema().dump(secret) for secret in page.items],
    }
    assert SecretPageSchema().dump(page) == generic


@pytest.mark.parametrize(
    "answer",
    [
        {"value": "s3cr3t ünïcode", "encoding": "utf-8", "expires_at": None, "version": 1},
        {
            "value": "AAEC",
            "encoding": "base64",
            "expires_at": NOW + timedelta(days=1),
            "version": 12,
        },
    ],
    ids=["text", "binary-expiring"],
)
def test_a_value_dumps_as_the_generic_schema_would(answer: dict[str, object]) -> None:
    obj = {"id": uuid.uuid4(), "name": "DB_URL", "created_at": NOW, **answer}
    schema = SecretValueSchema()
    assert schema.dump(obj) == Schema.dump(schema, obj)
    assert list(schema.dump(obj)) == list(Schema.dump(schema, obj))  # same order too


def test_a_resolution_dumps_as_the_generic_schema_would() -> None:
    plain, full, personal = varied()
    items = [
        {
            "name": full.name,
            "id": full.id,
            "scope": full.scope,
            "environment": full.environment,
            "version": 3,
            "reference": "secret://project/p-42/DB_URL",
            "shadows": [plain, personal],
            "value": "postgres://u:p@h/db",
            "encoding": "utf-8",
            "value_error": None,
        },
        {
            "name": plain.name,
            "id": plain.id,
            "scope": plain.scope,
            "environment": None,
            "version": 1,
            "reference": "secret://global/global/PLAIN",
            "shadows": [],
            "value": None,
            "encoding": None,
            "value_error": "forbidden",
        },
    ]
    schema = ResolutionSchema()
    fast, generic = schema.dump({"items": items}), Schema.dump(schema, {"items": items})
    assert fast == generic
    assert [list(item) for item in fast["items"]] == [list(item) for item in generic["items"]]
