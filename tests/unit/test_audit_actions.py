"""Audit action names are the domain's `AuditAction`, never free strings, and their texts (what
stored events and the API hold) do not change."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

from adapters.audit_log import TransactionalAuditLog
from core.audit import AuditTrail
from core.audit_chain import AuditChain, canonical_content
from core.domain.audit import AuditAction, with_fields
from core.domain.values import Principal
from tests.fakes import FakeUnitOfWorkFactory, FixedClock

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 7, 1, 9, 0, tzinfo=UTC)

# The texts as stored in every trail written so far: changing one breaks queries and exports.
STORED_TEXTS = {
    "audit.export", "audit.prune", "audit.verify",
    "auth.authenticate", "auth.rate_limited",
    "backend.adopt",
    "binding.create", "binding.delete", "binding.list",
    "key.rewrap", "key.rewrap_batch", "key.rotate",
    "migration.finish", "migration.list", "migration.plan", "migration.read", "migration.start",
    "report.expiring", "report.never_read", "report.rotation_overdue", "report.stale_tokens",
    "scope.create", "scope.delete", "scope.list", "scope.read",
    "secret.access_report", "secret.adopt", "secret.create", "secret.delete", "secret.export",
    "secret.import", "secret.list", "secret.list_versions", "secret.migrate",
    "secret.migrate.remove_source", "secret.purge", "secret.read_metadata", "secret.read_value",
    "secret.read_version", "secret.resolve", "secret.restore", "secret.rollback",
    "secret.rotate", "secret.rotate.abandon", "secret.rotate.pending",
    "secret.rotation_policy.delete", "secret.rotation_policy.read", "secret.rotation_policy.set",
    "secret.update", "secret.version.destroy", "secret.version.disable", "secret.version.enable",
    "secret.write_value",
    "service_account.create", "service_account.delete", "service_account.list",
    "service_account.read",
    "token.issue", "token.list", "token.revoke",
    "worker.deliver_events", "worker.end_grace", "worker.expiry_notice", "worker.prune",
    "worker.status",
}  # fmt: skip


def test_the_action_texts_are_the_stored_ones() -> None:
    assert {action.value for action in AuditAction} == STORED_TEXTS


def test_each_member_is_named_after_its_text() -> None:
    for action in AuditAction:
        assert action.name == action.value.upper().replace(".", "_")


def free_action_strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant in `source` that is an audit action's text."""
    texts = {action.value for action in AuditAction}
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in texts
    ]


def test_core_names_audit_actions_only_through_the_enum() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} {text!r}"
        for path in sorted((ROOT / "core").rglob("*.py"))
        if "domain" not in path.relative_to(ROOT).parts
        for line, text in free_action_strings(path.read_text(encoding="utf-8"))
    ]

    assert not found, "audit actions spelled as strings:\n" + "\n".join(found)


def test_the_check_finds_a_free_action_string() -> None:
    source = 'with trail.attempt(actor, "secret.read_value", resource):\n    pass\n'

    assert free_action_strings(source) == [(1, "secret.read_value")]
    assert free_action_strings('x = "secret.updated"\n') == []  # an event type, not an action


def test_an_event_holds_the_plain_text_and_hashes_as_before() -> None:
    db = FakeUnitOfWorkFactory()
    chain = AuditChain(b"k" * 32)
    trail = AuditTrail(TransactionalAuditLog(db, chain), chain, FixedClock(NOW))
    alice = Principal("user:alice", "user")

    with trail.attempt(alice, AuditAction.SECRET_READ_VALUE, "secret:x") as attempt:
        # plain text from the start: `bounded` and the canonical JSON keep their fast paths
        assert type(attempt.event.action) is str
        assert type(attempt.related(AuditAction.KEY_REWRAP, "key:k").action) is str
        attempt.succeed_durably()
    [stored] = db.database.audit_events()

    assert type(stored.action) is str
    assert stored.action == "secret.read_value"
    # the member itself would be written the same way, only on the slower general path
    assert canonical_content(with_fields(stored, action=AuditAction.SECRET_READ_VALUE)) == (
        canonical_content(stored)
    )
