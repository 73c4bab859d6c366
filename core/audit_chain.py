"""The audit trail's hash chain: the canonical content of an event, its hash, the chain's
links and signed checkpoints, and their verification.

Events form a hash chain: each holds the hash of its predecessor and of its own canonical
content, so an edited, deleted or reordered row breaks the chain at that point; signed
checkpoints (HMAC with a key the database does not hold) make a rewrite of the whole chain
detectable too.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from core.domain.audit import (
    AuditEvent,
    BrokenLink,
    ChainLink,
    ChainSegment,
    Checkpoint,
    with_fields,
)
from core.domain.audit_bounds import (
    TEXT_LIMITS,
    bounded_text,
)
from ports.audit_log import StaleRead
from ports.unit_of_work import UnitOfWork

GENESIS = "0" * 64
OUTCOMES = ("success", "denied", "not_found", "error")


_TEXT_LIMITS = tuple(TEXT_LIMITS.items())


REQUIRED_TEXTS = ("actor", "actor_type", "action", "resource", "outcome")
PLACEHOLDER_NOTE = {"placeholder": "the store refused this event: its texts are kept in ASCII"}


def placeholder_of(event: AuditEvent) -> AuditEvent:
    """The last resort for an event that its store refused even alone (a database whose
    encoding cannot hold a character, say): its texts in ASCII, the rest escaped, no version,
    and for details only a note saying so. The attempt stays on record with what can be kept."""
    changes: dict[str, Any] = {"version": None, "details": dict(PLACEHOLDER_NOTE)}
    for name, limit in _TEXT_LIMITS:
        value = event.__dict__[name]
        if value is None:
            changes[name] = "unknown" if name in REQUIRED_TEXTS else None
        else:
            text = bounded_text(value, limit)
            changes[name] = bounded_text(text.encode("ascii", "backslashreplace").decode(), limit)
    if changes["outcome"] not in OUTCOMES:
        changes["outcome"] = "error"
    return with_fields(event, **changes)


# The canonical JSON of the hashed document: what `json.dumps(..., sort_keys=True,
# separators=(",", ":"), ensure_ascii=True)` writes, with the encoder built once.
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode
_quote = json.encoder.encode_basestring_ascii  # how that encoder writes a str (C)


def event_hash(seq: int, prev_hash: str, event: AuditEvent) -> str:
    return chain_hash(seq, prev_hash, canonical_content(event))


def canonical_content(event: AuditEvent) -> str:
    """The canonical JSON of `event.content()`: what its hash covers (ASCII only).

    Written field by field in sorted key order, each text by the json module's own C quoting
    function, about twice as fast as encoding the content dict (a resolution writes 41 events);
    a field of any other type than the declared ones goes the general way. Tests compare both.
    """
    fields = event.__dict__
    details = fields["details"]
    try:
        return _write_canonical(
            fields,
            _quote(fields["time"].isoformat()),
            _canonical(dict(details)) if details else "{}",
        )
    except _Unusual:
        return _canonical(event.content())


def canonical_fields(content: dict[str, Any]) -> str:
    """The canonical JSON of a content dict as `AuditEvent.content()` gives it (the time as
    ISO 8601 text, the details a dict), written as `canonical_content` writes an event's."""
    details = content["details"]
    try:
        return _write_canonical(
            content, _text(content["time"]), _canonical(details) if details else "{}"
        )
    except _Unusual:
        return _canonical(content)


def _write_canonical(fields: Mapping[str, Any], time: str, details: str) -> str:
    """`fields` in canonical JSON, with the time and the details already written."""
    return (
        '{"action":'
        + _text(fields["action"])
        + ',"actor":'
        + _text(fields["actor"])
        + ',"actor_type":'
        + _text(fields["actor_type"])
        + ',"details":'
        + details
        + ',"outcome":'
        + _text(fields["outcome"])
        + ',"reason":'
        + _text(fields["reason"])
        + ',"request_id":'
        + _text(fields["request_id"])
        + ',"resource":'
        + _text(fields["resource"])
        + ',"scope":'
        + _text(fields["scope"])
        + ',"scope_path":'
        + _text(fields["scope_path"])
        + ',"source_ip":'
        + _text(fields["source_ip"])
        + ',"time":'
        + time
        + ',"user_agent":'
        + _text(fields["user_agent"])
        + ',"version":'
        + _integer(fields["version"])
        + "}"
    )


class _Unusual(Exception):
    """A field whose type the fast writer of `canonical_content` leaves to the encoder."""


def _text(value: object) -> str:
    if type(value) is str:
        return _quote(value)
    if value is None:
        return "null"
    raise _Unusual


def _integer(value: object) -> str:
    if type(value) is int:
        return str(value)
    if value is None:
        return "null"
    raise _Unusual


def chain_hash(seq: int, prev_hash: str, canonical: str) -> str:
    """SHA-256 (hex) of the canonical JSON of `{"seq": seq, "prev": prev_hash, "event":
    content}`, given the content's own canonical JSON: with sorted keys that document is
    `{"event":<content>,"prev":"<prev_hash>","seq":<seq>}`. A store that appends in one round
    trip (`ports.repositories.audit.ChainAppender`) computes exactly this."""
    document = '{"event":' + canonical + ',"prev":"' + prev_hash + '","seq":' + str(seq) + "}"
    return hashlib.sha256(document.encode()).hexdigest()


def chain_segments(
    segment: ChainSegment, count: int, checkpoint_key: bytes
) -> list[ChainSegment] | None:
    """`segment` cut into at most `count` consecutive segments of about equal length, each but
    the first starting right after a signed checkpoint whose MAC holds (its hash is then the
    next segment's anchor, and the segment before it checks that its last event has that
    hash). None when it cannot be cut in two, or a checkpoint at a cut does not hold (a pass
    in order then names the problem)."""
    first, last = segment.first, segment.last
    size = -(-(last - first + 1) // max(count, 1))
    by_seq = {checkpoint.seq: checkpoint for checkpoint in segment.checkpoints}
    seqs = sorted(by_seq)
    firsts, anchors = [first], [segment.anchor]
    for number in range(1, count):
        found = bisect.bisect_right(seqs, first + number * size - 1) - 1
        if found < 0 or not firsts[-1] <= seqs[found] < last:
            continue
        checkpoint = by_seq[seqs[found]]
        if not hmac.compare_digest(
            checkpoint.mac, checkpoint_mac(checkpoint_key, checkpoint.seq, checkpoint.hash)
        ):
            return None
        firsts.append(checkpoint.seq + 1)
        anchors.append(checkpoint.hash)
    if len(firsts) < 2:
        return None
    lasts = [start - 1 for start in firsts[1:]] + [last]
    return [
        ChainSegment(
            start,
            end,
            anchor,
            tuple(c for c in segment.checkpoints if start <= c.seq <= end),
        )
        for start, end, anchor in zip(firsts, lasts, anchors, strict=True)
    ]


def link_of(event: AuditEvent) -> ChainLink:
    assert event.seq is not None and event.prev_hash is not None and event.hash is not None
    return ChainLink(event.seq, event.prev_hash, event.hash, canonical_content(event))


def chained(events: Iterable[AuditEvent], head_seq: int, head_hash: str) -> list[AuditEvent]:
    """Give events their places after the chain head (`head_seq` 0 and GENESIS when empty)."""
    linked = []
    for offset, event in enumerate(events, start=1):
        seq = head_seq + offset
        digest = event_hash(seq, head_hash, event)
        linked.append(with_fields(event, seq=seq, prev_hash=head_hash, hash=digest))
        head_hash = digest
    return linked


def derive_checkpoint_key(secret: bytes) -> bytes:
    """The checkpoint key, derived from a key kept outside the database (the key provider's)."""
    return hmac.new(secret, b"secret-management audit checkpoints", hashlib.sha256).digest()


def checkpoint_mac(key: bytes, seq: int, digest: str) -> str:
    return hmac.new(key, f"{seq}:{digest}".encode(), hashlib.sha256).hexdigest()


def verify_chain(
    events: Iterable[AuditEvent],
    checkpoints: Iterable[Checkpoint],
    checkpoint_key: bytes,
    *,
    start_seq: int = 1,
    start_prev_hash: str = GENESIS,
    checkpoint_every: int | None = None,
) -> tuple[int, BrokenLink | None]:
    """Walk the events in order; return how many were checked and the first broken link.

    With `checkpoint_every`, each event at that cadence must have its signed checkpoint, so a
    chain rewritten without the key (its checkpoints dropped) does not pass either."""
    return verify_links(
        (link_of(event) for event in events),
        checkpoints,
        checkpoint_key,
        start_seq=start_seq,
        start_prev_hash=start_prev_hash,
        checkpoint_every=checkpoint_every,
    )


def verify_links(
    links: Iterable[ChainLink],
    checkpoints: Iterable[Checkpoint],
    checkpoint_key: bytes,
    *,
    start_seq: int = 1,
    start_prev_hash: str = GENESIS,
    checkpoint_every: int | None = None,
) -> tuple[int, BrokenLink | None]:
    """`verify_chain` on links as a repository streams them (`AuditRepository.chain_links`)."""
    with _without_cyclic_gc():
        return _verify_links(
            links, checkpoints, checkpoint_key, start_seq, start_prev_hash, checkpoint_every
        )


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """A long chain makes millions of short-lived, acyclic dicts and tuples: reference counting
    frees them all, and the cyclic collector's passes over them only cost time (about 40% of
    a verification), so it pauses while the chain is walked."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _verify_links(
    links: Iterable[ChainLink],
    checkpoints: Iterable[Checkpoint],
    checkpoint_key: bytes,
    start_seq: int,
    start_prev_hash: str,
    checkpoint_every: int | None,
) -> tuple[int, BrokenLink | None]:
    signed = {checkpoint.seq: checkpoint for checkpoint in checkpoints}
    expected_seq, prev_hash, checked = start_seq, start_prev_hash, 0
    for event in links:
        if event.seq != expected_seq:
            return checked, BrokenLink(expected_seq, f"event {expected_seq} is missing")
        if event.prev_hash != prev_hash:
            return checked, BrokenLink(expected_seq, "it does not follow its predecessor")
        if event.hash != chain_hash(expected_seq, prev_hash, event.canonical):
            return checked, BrokenLink(expected_seq, "its content was altered")
        checkpoint = signed.pop(expected_seq, None)
        if checkpoint is None and checkpoint_every and expected_seq % checkpoint_every == 0:
            return checked, BrokenLink(expected_seq, "its signed checkpoint is missing")
        if checkpoint is not None and not (
            checkpoint.hash == event.hash
            and hmac.compare_digest(
                checkpoint.mac, checkpoint_mac(checkpoint_key, checkpoint.seq, checkpoint.hash)
            )
        ):
            return checked, BrokenLink(expected_seq, "it does not match its signed checkpoint")
        prev_hash, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    for checkpoint in sorted(signed.values(), key=lambda c: c.seq):
        if checkpoint.seq >= start_seq:  # signed, but past the last event: the tail was cut
            return checked, BrokenLink(checkpoint.seq, "a signed checkpoint has no event")
    return checked, None


class CheckpointDue(Exception):
    """An append sent with its transaction's COMMIT (`AuditChain.append_at_commit`) would
    have reached a seq that needs a signed checkpoint: nothing was committed; do the
    transaction again, appending with `AuditChain.append`."""


class AuditChain:
    """Appends events to the chain: under the chain's lock, hashed, and each event whose seq
    is a multiple of `checkpoint_every` signed in a checkpoint with an HMAC whose key the
    database does not hold (verification expects exactly those)."""

    def __init__(self, checkpoint_key: bytes, checkpoint_every: int = 1000) -> None:
        self._key = checkpoint_key
        self.every = checkpoint_every

    def append(
        self,
        uow: UnitOfWork,
        events: list[AuditEvent],
        *,
        requires_generation: int | None = None,
    ) -> list[AuditEvent]:
        """Lock the chain and append `events`, bounded (`AuditEvent.bounded`), in `uow`'s
        transaction. With `requires_generation`, raise `StaleRead` instead if the change
        generation moved on."""
        events = [event.bounded() for event in events]
        head_seq, head_hash = uow.audit.lock_head()
        if requires_generation is not None and uow.audit.generation() != requires_generation:
            raise StaleRead()
        return self.link(uow, events, head_seq, head_hash)

    def append_at_commit(self, uow: UnitOfWork, events: list[AuditEvent]) -> list[AuditEvent]:
        """Append `events`, bounded, when `uow` commits, in the same round trip as its COMMIT
        where the store can (`AuditRepository.append_at_commit`: the list returned is filled
        once committed, and the commit may raise `CheckpointDue`); otherwise now, as
        `append` does."""
        events = [event.bounded() for event in events]
        contents = [canonical_content(event) for event in events]
        pending = uow.audit.append_at_commit(events, contents, self.every)
        if pending is not None:
            return pending
        head_seq, head_hash = uow.audit.lock_head()
        return self.link(uow, events, head_seq, head_hash)

    def link(
        self, uow: UnitOfWork, events: list[AuditEvent], head_seq: int, head_hash: str
    ) -> list[AuditEvent]:
        """Append `events` (bounded already) after the head that `lock_head` returned in this
        transaction."""
        linked = chained(events, head_seq, head_hash)
        uow.audit.append(linked)  # the events, and the head moved to the last one
        for event in linked:  # set by chained(): seq and hash are there
            if event.seq is not None and event.hash is not None and event.seq % self.every == 0:
                uow.audit.add_checkpoint(self.checkpoint(event.seq, event.hash, event.time))
        return linked

    def checkpoint(self, seq: int, digest: str, at: datetime) -> Checkpoint:
        return Checkpoint(seq, digest, checkpoint_mac(self._key, seq, digest), at)

    def __repr__(self) -> str:
        return "AuditChain(<key redacted>)"
