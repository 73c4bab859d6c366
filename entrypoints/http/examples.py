"""Examples of the API's main requests and answers, for the OpenAPI document (`example=` of the
views' `arguments` and `response`). tests/e2e/test_openapi_document.py loads each request
example through its schema and checks each answer against the document: they cannot drift."""

from __future__ import annotations

import json
from typing import Any

OPENAI_KEY_ID = "8583a0be-5780-4caa-a4f9-c245455866fa"
ACCOUNT_ID = "b0c030c9-ad27-4d27-ad08-457abd60a5cc"
PROJECT = {"type": "project", "id": "p-42"}
TEAM = {"type": "team", "id": "t-1"}
CREATED_AT = "2026-12-05T01:34:22.966434+00:00"
UPDATED_AT = "2026-12-05T01:40:03.000224+00:00"
REFERENCE = "secret://project/p-42/OPENAI_API_KEY?env=production"

SECRET_CREATE = {
    "name": "OPENAI_API_KEY",
    "scope": {**PROJECT, "parent": TEAM},
    "environment": "production",
    "consumer": "llm_model",
    "description": "The ML platform's OpenAI key",
    "tags": {"owner": "ml-platform"},
    "value": "sk-example-0001",
}
SECRET: dict[str, Any] = {
    "id": OPENAI_KEY_ID,
    "name": "OPENAI_API_KEY",
    "scope": PROJECT,
    "environment": "production",
    "type": "generic",
    "description": "The ML platform's OpenAI key",
    "tags": {"owner": "ml-platform"},
    "consumer": "llm_model",
    "backend": "local",
    "current_version": 1,
    "expires_at": None,
    "not_before": None,
    "max_versions": None,
    "created_at": CREATED_AT,
    "created_by": "user:alice",
    "updated_at": None,
    "updated_by": None,
    "deleted_at": None,
    "purge_after": None,
    "revision": 1,
    "previous_version": None,
    "pending_version": None,
    "reference": REFERENCE,
}
SECRET_WRITTEN = SECRET | {
    "current_version": 2,
    "previous_version": 1,
    "revision": 2,
    "updated_at": UPDATED_AT,
    "updated_by": "user:alice",
}
SECRET_UPDATE = {"description": "OpenAI key of the ML platform", "expires_at": None}
SECRET_UPDATED = SECRET | {
    "description": "OpenAI key of the ML platform",
    "revision": 2,
    "updated_at": UPDATED_AT,
    "updated_by": "user:alice",
}
SECRET_PAGE = {"page": 1, "page_size": 50, "total": 1, "next": None, "items": [SECRET]}
SECRET_VALUE = {
    "id": OPENAI_KEY_ID,
    "name": "OPENAI_API_KEY",
    "version": 1,
    "value": "sk-example-0001",
    "encoding": "utf-8",
    "created_at": CREATED_AT,
    "expires_at": None,
}

VERSION_CREATE = {"value": "sk-example-0002", "expires_at": "2027-06-30T00:00:00+00:00"}
VERSION = {
    "version": 2,
    "state": "enabled",
    "stage": "current",
    "backend": "local",
    "created_at": UPDATED_AT,
    "created_by": "user:alice",
    "expires_at": "2027-06-30T00:00:00+00:00",
    "not_before": None,
    "disable_at": None,
}
VERSION_LIST = {
    "items": [
        VERSION
        | {
            "version": 1,
            "stage": "previous",
            "created_at": CREATED_AT,
            "expires_at": None,
        },
        VERSION,
    ]
}
ROLLBACK = {"version": 1}
ROTATE = {"value": "sk-example-0003"}
ROTATION_POLICY_INPUT = {
    "rotator": "random",
    "settings": {"length": 40},
    "interval_seconds": 2592000,
    "grace_seconds": 86400,
}
ROTATION_POLICY = {
    "secret_id": OPENAI_KEY_ID,
    "rotator": "random",
    "settings": {"length": 40},
    "interval_seconds": 2592000,
    "cron": None,
    "grace_seconds": 86400,
    "next_run_at": "2027-01-04T01:34:23.041005+00:00",
    "last_run_at": None,
    "last_status": None,
    "last_error": None,
    "created_at": CREATED_AT,
    "created_by": "user:alice",
    "updated_at": None,
    "updated_by": None,
}

RESOLUTION = {
    "items": [
        {
            "name": "OPENAI_API_KEY",
            "id": OPENAI_KEY_ID,
            "scope": PROJECT,
            "environment": "production",
            "version": 2,
            "reference": REFERENCE,
            "shadows": [
                {
                    "id": "3c1f9a52-0d7e-4b8a-9e61-5a2f7c4d8b10",
                    "scope": {"type": "organization", "id": "acme"},
                    "environment": None,
                    "reference": "secret://organization/acme/OPENAI_API_KEY",
                }
            ],
            "value": "sk-example-0002",
            "encoding": "utf-8",
            "value_error": None,
            "expansions": [],
        }
    ]
}

SCOPE_CREATE = {**PROJECT, "parent": TEAM}
SCOPE = {**PROJECT, "parent": TEAM, "created_at": CREATED_AT}
SCOPE_PAGE = {
    "page": 1,
    "page_size": 50,
    "total": 2,
    "items": [
        {**TEAM, "parent": {"type": "organization", "id": "acme"}, "created_at": CREATED_AT},
        SCOPE,
    ],
}

ROLE_BINDING_CREATE = {"principal": "group:ml-engineers", "role": "reader", "scope": PROJECT}
ROLE_BINDING = {
    "id": "80046bf3-60b2-46ce-8d48-ea8462a1919a",
    "principal": "group:ml-engineers",
    "role": "reader",
    "scope": PROJECT,
    "secret_id": None,
    "name_pattern": None,
    "created_at": CREATED_AT,
    "created_by": "user:alice",
    "expires_at": None,
}
ROLE_BINDING_PAGE = {"page": 1, "page_size": 50, "total": 1, "items": [ROLE_BINDING]}

SERVICE_ACCOUNT_CREATE = {
    "name": "ci-deployer",
    "scope": PROJECT,
    "description": "Deploys p-42 from CI",
}
SERVICE_ACCOUNT = {
    "id": ACCOUNT_ID,
    "name": "ci-deployer",
    "principal": "service:ci-deployer@project:p-42",
    "scope": PROJECT,
    "description": "Deploys p-42 from CI",
    "created_at": CREATED_AT,
    "created_by": "user:alice",
}
SERVICE_ACCOUNT_PAGE = {"page": 1, "page_size": 50, "total": 1, "items": [SERVICE_ACCOUNT]}
TOKEN_CREATE = {"description": "GitHub Actions", "expires_at": "2027-06-30T00:00:00+00:00"}
TOKEN = {
    "id": "be88d9a9-75ec-4ec8-9260-45a231f82f46",
    "prefix": "smt_arNP4q",
    "description": "GitHub Actions",
    "created_at": CREATED_AT,
    "created_by": "user:alice",
    "expires_at": "2027-06-30T00:00:00+00:00",
    "revoked_at": None,
    "last_used_at": None,
}
ISSUED_TOKEN = TOKEN | {"token": "smt_arNP4q2v8GlZ3xvkmsJVbkL0qu8yPQAUkhVNgqQoeuU"}
TOKEN_LIST = {"items": [TOKEN]}

AUDIT_EVENT = {
    "seq": 16,
    "time": CREATED_AT,
    "request_id": "03e4bedf498cdd176095cd68664d3251",
    "actor": "user:alice",
    "actor_type": "user",
    "source_ip": "10.0.4.17",
    "user_agent": "secretctl/1.0",
    "action": "secret.read_value",
    "resource": f"secret:{OPENAI_KEY_ID}",
    "scope": "project/p-42",
    "version": 1,
    "outcome": "success",
    "reason": None,
    "details": {},
    "prev_hash": "1f7ab48b03736666f28413ce06567337f2354aeecdf48c29d8bf4adba4e18c54",
    "hash": "d8d192df354e4f0d3581093007e7e0506283f800afea0d7360aee9d3ea311502",
}
AUDIT_EVENT_PAGE = {"items": [AUDIT_EVENT], "next_cursor": None}
AUDIT_VERIFY = {"from_seq": 1, "to_seq": 1000}
AUDIT_VERIFICATION = {"ok": True, "checked": 1000, "first_seq": 1, "last_seq": 1000, "broken": None}
AUDIT_EXPORT_JSONL = json.dumps(AUDIT_EVENT, separators=(",", ":")) + "\n"
AUDIT_EXPORT_CSV = (
    ",".join(AUDIT_EVENT)
    + "\n"
    + f"16,{CREATED_AT},03e4bedf498cdd176095cd68664d3251,user:alice,user,10.0.4.17,"
    + f"secretctl/1.0,secret.read_value,secret:{OPENAI_KEY_ID},project/p-42,1,success,,{{}},"
    + f"{AUDIT_EVENT['prev_hash']},{AUDIT_EVENT['hash']}\n"
)

EXPORT = {
    "scope": PROJECT,
    "environment": "production",
    "format": "dotenv",
    "include_values": True,
}
EXPORT_DOTENV = "OPENAI_API_KEY=sk-example-0001\n"
EXPORT_JSON = {
    "format": "secret-management-export",
    "schema_version": 1,
    "exported_at": UPDATED_AT,
    "scope": PROJECT,
    "environment": "production",
    "includes_values": True,
    "includes_versions": False,
    "secrets": [
        {
            "name": "OPENAI_API_KEY",
            "type": "generic",
            "description": "The ML platform's OpenAI key",
            "tags": {"owner": "ml-platform"},
            "consumer": "llm_model",
            "value": "sk-example-0001",
        }
    ],
}
