"""Contract suites for plugin authors: one per plugin kind, each a class to subclass in a test
module, giving it a fixture with the implementation under test (see `docs/extending.md`).

    from plugins.testing import FormatContract

    class TestMyFormat(FormatContract):
        @pytest.fixture
        def secret_format(self):
            return MyFormat()

Every built-in implementation runs its kind's contract (`tests/unit/test_plugin_contracts.py`,
and the storage backends under `tests/integration`), and each contract is shown to fail on a
deliberately broken implementation (`tests/unit/test_contracts_catch_broken_plugins.py`).
"""

from plugins.testing.audit_sinks import AuditSinkContract
from plugins.testing.backends import BackendContract
from plugins.testing.formats import FormatContract
from plugins.testing.key_providers import KeyProviderContract
from plugins.testing.leaks import assert_not_leaked, assert_not_logged, canary
from plugins.testing.rotators import RotatorContract
from plugins.testing.types import SecretTypeContract

__all__ = [
    "AuditSinkContract",
    "BackendContract",
    "FormatContract",
    "KeyProviderContract",
    "RotatorContract",
    "SecretTypeContract",
    "assert_not_leaked",
    "assert_not_logged",
    "canary",
]
