"""An operation's error responses are documented from the core errors its view declares
(`raises`) through the one error map that answers them at run time (`STATUS_BY_ERROR`)."""

from __future__ import annotations

from typing import Any

import pytest

from core.domain.errors import Conflict, Expired, Forbidden, VersionUnavailable
from entrypoints.http import errors
from entrypoints.http.blueprint import Blueprint, raises

TOKEN_STATUSES = {401, 429, 503}  # any operation that takes a token


def documented_statuses(*declared: type[Exception]) -> set[int]:
    operation: dict[str, Any] = {"docstring": {}, "raises": list(declared)}
    Blueprint("probe", __name__).complete(operation, "get_probe", has_path=False, has_text=False)
    return set(operation["response"]["responses"])


def test_the_statuses_are_those_of_the_declared_errors() -> None:
    assert documented_statuses(Forbidden, Expired) == TOKEN_STATUSES | {403, 410}


def test_a_subclass_is_documented_with_its_own_status() -> None:
    assert errors.status_of_class(VersionUnavailable) == 409
    assert documented_statuses(VersionUnavailable) == TOKEN_STATUSES | {409}


def test_the_document_follows_the_error_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(errors.STATUS_BY_ERROR, Conflict, 412)
    assert documented_statuses(Conflict) == TOKEN_STATUSES | {412}


def test_raises_annotates_the_view_without_wrapping_it() -> None:
    def view() -> None: ...

    assert raises(Forbidden, Conflict)(view) is view
    assert raises(Forbidden)(view)._apidoc["raises"] == [Forbidden, Conflict]  # type: ignore[attr-defined]
