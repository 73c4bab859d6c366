"""The resolution's hand-written dump with `variables=true` answers exactly what the schemas
do (as tests/unit/test_fast_dump.py checks without them)."""

from __future__ import annotations

import uuid

from marshmallow import Schema

from core.domain.values import ScopeRef
from entrypoints.http.schemas.resolve import ResolutionSchema


def test_the_fast_dump_of_variables_is_the_schemas() -> None:
    entry = {
        "name": "AWS",
        "id": uuid.uuid4(),
        "scope": ScopeRef.global_scope(),
        "environment": None,
        "version": 2,
        "reference": "secret://global/global/AWS",
        "shadows": [],
        "value": '{"access_key_id":"AKIA"}',
        "encoding": "utf-8",
        "value_error": None,
    }
    items = [
        entry
        | {
            "variables": {"AWS_ACCESS_KEY_ID": "AKIA"},
            "variables_error": None,
            "unset_variables": [{"name": "AWS_REGION", "reason": "shadowed", "by": ["REGION"]}],
        },
        entry
        | {"name": "BLOB", "variables": None, "variables_error": "not_text"}
        | {"unset_variables": []},
        entry,  # asked without variables=true: no such keys
    ]
    schema = ResolutionSchema()

    fast, generic = schema.dump({"items": items}), Schema.dump(schema, {"items": items})

    assert fast == generic
    assert [list(item) for item in fast["items"]] == [list(item) for item in generic["items"]]
    assert "variables" in fast["items"][0] and "variables" not in fast["items"][2]
