"""PostgreSQL: `secret_audit_append`, the audit chain's append in one statement.

The function takes the chain's lock (the head row), hashes the events after the head exactly as
`core.audit.chain_hash` does (SHA-256 of `{"event":<content>,"prev":"<hash>","seq":<seq>}`),
inserts them and moves the head. Called alone in autocommit mode it is a whole transaction in
one round trip, so the chain's lock is held only inside the server, never across a client's
network waits. It writes nothing when the batch would reach a seq that needs a signed
checkpoint (the key is not the database's): the caller then appends that batch itself.
Events whose required change generation is not the current one are left out (stale reads).

SQLite has no such function; its appends go through the unit of work as before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTENT_COLUMNS = (
    "time, request_id, actor, actor_type, source_ip, user_agent, action, resource, scope, "
    "scope_path, version, outcome, reason, details"
)
FROM_RECORD = ", ".join(f"r.{column}" for column in CONTENT_COLUMNS.split(", "))

APPEND_FUNCTION = f"""
CREATE OR REPLACE FUNCTION secret_audit_append(
    p_contents text[], p_required bigint[], p_checkpoint_every bigint
) RETURNS TABLE (out_generation bigint, out_seq bigint, out_hash text, out_written boolean)
LANGUAGE plpgsql AS $fn$
DECLARE
    head_seq bigint;
    head_hash text;
    head_generation bigint;
    total integer := coalesce(array_length(p_contents, 1), 0);
    admitted integer := 0;
    seqs bigint[] := '{{}}';
    prevs text[] := '{{}}';
    hashes text[] := '{{}}';
    last_seq bigint;
    last_hash text;
BEGIN
    UPDATE secret_audit_head AS h SET seq = h.seq WHERE h.id = 1
        RETURNING h.seq, h.hash, h.generation INTO head_seq, head_hash, head_generation;
    FOR i IN 1 .. total LOOP
        IF p_required[i] IS NULL OR p_required[i] = head_generation THEN
            admitted := admitted + 1;
        END IF;
    END LOOP;
    IF p_checkpoint_every > 0
       AND (head_seq + admitted) / p_checkpoint_every > head_seq / p_checkpoint_every THEN
        RETURN QUERY SELECT head_generation, head_seq, head_hash, false;
        RETURN;
    END IF;
    last_seq := head_seq;
    last_hash := head_hash;
    FOR i IN 1 .. total LOOP
        IF p_required[i] IS NULL OR p_required[i] = head_generation THEN
            last_seq := last_seq + 1;
            seqs[i] := last_seq;
            prevs[i] := last_hash;
            last_hash := encode(sha256(convert_to(
                '{{"event":' || p_contents[i] || ',"prev":"' || last_hash || '","seq":'
                || last_seq || '}}', 'UTF8')), 'hex');
            hashes[i] := last_hash;
        END IF;
    END LOOP;
    IF admitted > 0 THEN
        INSERT INTO secret_audit_events (seq, prev_hash, hash, {CONTENT_COLUMNS})
        SELECT seqs[c.n], prevs[c.n], hashes[c.n], {FROM_RECORD}
        FROM unnest(p_contents) WITH ORDINALITY AS c(content, n),
             LATERAL json_populate_record(NULL::secret_audit_events, c.content::json) AS r
        WHERE seqs[c.n] IS NOT NULL;
        UPDATE secret_audit_head AS h SET seq = last_seq, hash = last_hash WHERE h.id = 1;
    END IF;
    RETURN QUERY SELECT head_generation, head_seq, head_hash, true;
END
$fn$
"""  # noqa: S608 - built from this module's constants only


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS secret_audit_append(text[], bigint[], bigint)")
