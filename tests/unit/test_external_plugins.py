"""The external backend plugins without their servers: discovery without the SDKs, settings
checked at start, the locator format and its binding rule, vendor errors translated."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from core.adoption import adopted_secret_id
from core.domain.errors import (
    BackendAuthFailed,
    BackendUnavailable,
    ConfigurationError,
    NotFound,
    ValueIntegrityError,
)
from core.domain.values import VersionKey
from plugins.external import ExternalNames, Locator, bound_locator
from plugins.manager import backend_plugins, build_plugin_manager, create_backend
from ports.storage import BackendContext

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = BackendContext(None, None)
SDKS = {
    "vault": ("hvac",),
    "aws": ("boto3", "botocore"),
    "azure": ("azure.keyvault.secrets", "azure.identity"),
    "gcp": ("google.cloud.secretmanager",),
}
MINIMAL = {
    "vault": {"url": "http://127.0.0.1:1"},
    "aws": {
        "region": "eu-west-1",
        "access_key_id_env": "SM_UNIT_AWS_KEY",
        "secret_access_key_env": "SM_UNIT_AWS_KEY",
    },
    "azure": {"vault_url": "https://127.0.0.1:1"},
    "gcp": {"project": "p", "anonymous": True},
}


@pytest.fixture(autouse=True)
def _no_cloud_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS keys, and no SDK looking for credentials on an instance metadata address."""
    monkeypatch.setenv("SM_UNIT_AWS_KEY", "unit-test")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_importing_the_plugins_imports_no_sdk() -> None:
    modules = [f"plugins.{plugin}_backend" for plugin in SDKS]
    sdks = [module for names in SDKS.values() for module in names]
    script = (
        f"import sys\nfor name in {modules!r}: __import__(name)\n"
        f"print([m for m in {sdks!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("plugin", sorted(SDKS))
def test_a_missing_sdk_is_reported_with_its_extra_not_as_a_traceback(
    plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in SDKS[plugin]:  # as if not installed, even when another test imported it
        monkeypatch.setitem(sys.modules, module, None)

    plugins = backend_plugins(build_plugin_manager())  # discovery still works

    with pytest.raises(ConfigurationError) as raised:
        create_backend(f"{plugin}-1", {"plugin": plugin, **MINIMAL[plugin]}, plugins, CONTEXT)
    assert f"pip install 'secret-management[{plugin}]'" in raised.value.message


@pytest.mark.parametrize(
    ("plugin", "settings", "key", "problem"),
    [
        ("vault", {"token": "s.inline"}, "token", "unknown setting"),
        ("vault", {"token_env": "SM_UNSET_VARIABLE"}, "token_env", "SM_UNSET_VARIABLE is not set"),
        ("vault", {"auth": "approle"}, "role_id", "is required"),
        ("vault", {"timeout": "soon"}, "timeout", "whole number"),
        ("aws", {"secret_access_key_env": None}, "secret_access_key_env", "is required"),
        ("aws", {"prefix": "white space/"}, "prefix", "must match"),
        ("azure", {"prefix": "under_score-"}, "prefix", "must match"),
        ("azure", {"client_id": "app"}, "tenant_id", "is required"),
        ("gcp", {"transport": "carrier-pigeon"}, "transport", "'grpc' or 'rest'"),
        (
            "gcp",
            {"anonymous": False, "credentials_file": "/nope.json"},
            "credentials_file",
            "usable",
        ),
        ("gcp", {"credentials_file": "/nope.json"}, "anonymous", "either"),
    ],
)
def test_bad_settings_stop_the_start_naming_the_key(
    plugin: str, settings: dict[str, Any], key: str, problem: str
) -> None:
    plugins = backend_plugins(build_plugin_manager())
    options = {"plugin": plugin, **MINIMAL[plugin], **settings}

    with pytest.raises(ConfigurationError) as raised:
        create_backend("store", options, plugins, CONTEXT)
    assert raised.value.details == {"key": f"backends.store.{key}"}
    assert problem in raised.value.message


# -- names and locators -------------------------------------------------------------------------

NAMES = ExternalNames("sm/")


def test_a_locator_round_trips_any_name_and_version_id() -> None:
    key = VersionKey(uuid.uuid4(), 7)
    for locator in (
        Locator("sm/a:b/c%d", "v:1/2", key),
        Locator("legacy name/with:colons", "AWS-version-id"),
    ):
        assert Locator.parse(str(locator), "b") == locator


@pytest.mark.parametrize("text", ["", "garbage", "x:y:z:w", "adopted:only-two", "a:b:c:d:e"])
def test_text_that_is_no_locator_is_not_found(text: str) -> None:
    with pytest.raises(NotFound):
        Locator.parse(text, "b")


def test_a_written_locator_belongs_only_to_its_key_and_its_secrets_names() -> None:
    key = VersionKey(uuid.uuid4(), 2)
    own = str(Locator(NAMES.for_secret(key.secret_id), "5", key))
    assert bound_locator(own, key, "b", NAMES).native == "5"
    under = str(Locator(f"{NAMES.for_secret(key.secret_id)}/2/ab12", "v", key))
    assert bound_locator(under, key, "b", NAMES).name.endswith("/2/ab12")

    elsewhere = str(Locator(NAMES.for_secret(uuid.uuid4()), "5", key))
    for text, wrong_key in ((own, VersionKey(key.secret_id, 1)), (elsewhere, key)):
        with pytest.raises(ValueIntegrityError):
            bound_locator(text, wrong_key, "b", NAMES)


def test_an_adopted_locator_belongs_only_to_version_1_of_the_secret_adopting_it() -> None:
    text = str(Locator("legacy/db", "3"))
    adopted = adopted_secret_id("b", text)

    assert bound_locator(text, VersionKey(adopted, 1), "b", NAMES).name == "legacy/db"
    for wrong in (VersionKey(adopted, 2), VersionKey(uuid.uuid4(), 1)):
        with pytest.raises(ValueIntegrityError):
            bound_locator(text, wrong, "b", NAMES)
    with pytest.raises(ValueIntegrityError):  # the same locator in another backend instance
        bound_locator(text, VersionKey(adopted, 1), "other", NAMES)


def test_only_names_derived_from_a_uuid_are_the_services() -> None:
    secret_id = uuid.uuid4()
    assert NAMES.owner(f"sm/{secret_id}") == secret_id
    assert NAMES.owner(f"sm/{secret_id}/3/ab") == secret_id
    for foreign in (f"sm/{secret_id}x", f"other/{secret_id}", "sm/db", f"sm/{secret_id}".upper()):
        assert NAMES.owner(foreign) is None


# -- vendor errors ------------------------------------------------------------------------------


def backend_of(plugin: str) -> Any:
    plugins = backend_plugins(build_plugin_manager())
    return create_backend("b1", {"plugin": plugin, **MINIMAL[plugin]}, plugins, CONTEXT)


def aws_error(code: str, status: int = 400) -> Exception:
    from botocore.exceptions import ClientError

    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetSecretValue")  # type: ignore[arg-type]


def google_error(name: str) -> Exception:
    from google.api_core import exceptions

    return getattr(exceptions, name)("refused")  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("plugin", "make_error", "expected"),
    [
        ("aws", lambda: aws_error("UnrecognizedClientException"), BackendAuthFailed),
        ("aws", lambda: aws_error("AccessDeniedException"), BackendAuthFailed),
        ("aws", lambda: aws_error("ThrottlingException"), BackendUnavailable),
        ("aws", lambda: aws_error("InternalServiceError", 500), BackendUnavailable),
        ("aws", lambda: aws_error("ResourceNotFoundException"), NotFound),
        ("gcp", lambda: google_error("PermissionDenied"), BackendAuthFailed),
        ("gcp", lambda: google_error("Unauthenticated"), BackendAuthFailed),
        ("gcp", lambda: google_error("TooManyRequests"), BackendUnavailable),
        ("gcp", lambda: google_error("FailedPrecondition"), NotFound),
        ("gcp", lambda: requests.ConnectionError("refused"), BackendUnavailable),
        ("vault", lambda: requests.Timeout("slow"), BackendUnavailable),
    ],
)
def test_vendor_errors_become_core_errors_naming_the_instance(
    plugin: str, make_error: Any, expected: type[Exception]
) -> None:
    backend = backend_of(plugin)
    translated = backend._translate(make_error())
    assert type(translated) is expected
    if expected is not NotFound:
        assert "'b1'" in translated.message
    assert backend._translate(KeyError("a programming error")) is None
    backend.close()
