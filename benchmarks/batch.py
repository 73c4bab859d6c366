"""Batch jobs timed end to end: import a large .env, re-key after a key-encryption-key
rotation, verify a long audit chain. A job the service does not offer yet is reported as not
available, with what it would need, never faked."""

from __future__ import annotations

import base64
import os
import time
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any

import requests

from benchmarks.dataset import Scope
from benchmarks.seed import bearer
from benchmarks.servers import HarnessError, secretctl
from core.domain.values import SecretValue, VersionKey
from entrypoints.cli import OPERATOR
from entrypoints.config import load_settings
from entrypoints.container import Container

APPEND_CHUNKS_PER_TRANSACTION = 10
PROGRESS_EVERY = 100_000
LONG_REQUEST_TIMEOUT = 1800.0
REKEY_SEED_CHUNK = 5000
REKEY_BATCH = 2000


@dataclass(frozen=True)
class BatchResult:
    job: str
    size: int
    seconds: float | None  # None when the job did not run
    status: str  # "ok", "not available" or "failed"
    detail: str = ""
    target_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def import_dotenv(service_url: str, admin_token: str, lines: int, parent: Scope) -> BatchResult:
    """POST /api/v1/imports (multipart: the file and its target) of a `lines`-line .env into a
    new project below `parent`, if the service has the endpoint."""
    job, target = "import_env", 10.0
    openapi = requests.get(f"{service_url}/api/v1/openapi.json", timeout=30).json()
    if "/api/v1/imports" not in openapi.get("paths", {}):
        return BatchResult(
            job, lines, None, "not available", "the service has no POST /api/v1/imports yet", target
        )
    content = "".join(f"IMPORTED_{n:05d}=value-{n:05d}-{uuid.uuid4().hex}\n" for n in range(lines))
    form = {
        "scope_type": "project",
        "scope_id": "p-import",
        "parent_type": parent.type,
        "parent_id": parent.id,
        "format": "dotenv",
        "strategy": "overwrite",
    }
    started = time.perf_counter()
    response = requests.post(
        f"{service_url}/api/v1/imports",
        data=form,
        files={"file": ("bench.env", content.encode(), "text/plain")},
        headers=bearer(admin_token),
        timeout=LONG_REQUEST_TIMEOUT,
    )
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        detail = f"{response.status_code}: {response.text[:300]}"
        return BatchResult(job, lines, None, "failed", detail, target)
    counts = response.json().get("counts", {})
    return BatchResult(job, lines, round(seconds, 2), "ok", f"counts {counts}", target)


def rekey(env: dict[str, str], versions: int) -> list[BatchResult]:
    """Seed `versions` real envelope blobs under the service's key (bulk, through the local
    backend's `put_many`; timed apart), rotate the key as an operator of the env provider does
    (a new `SECRETS_MASTER_KEY`, the old one in `SECRETS_MASTER_KEY_PREVIOUS`), then time the
    re-wrap job end to end. Runs last: the running service does not hold the new key."""
    container = Container(settings=load_settings(environ=env), environ=env)
    started = time.perf_counter()
    try:
        backend = container.backends().get("local")
        for start in range(0, versions, REKEY_SEED_CHUNK):
            size = min(REKEY_SEED_CHUNK, versions - start)
            backend.put_many(
                [(VersionKey(uuid.uuid4(), 1), SecretValue(os.urandom(32))) for _ in range(size)]
            )
    finally:
        container.shutdown_resources()
    seeded = BatchResult(
        "seed_rekey_versions", versions, round(time.perf_counter() - started, 1), "ok"
    )
    rotated = env | {
        "SECRETS_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "SECRETS_MASTER_KEY_PREVIOUS": env["SECRETS_MASTER_KEY"],
    }
    container = Container(settings=load_settings(environ=rotated), environ=rotated)
    started = time.perf_counter()
    try:
        report = container.key_service().rewrap(OPERATOR, batch_size=REKEY_BATCH)
    finally:
        container.shutdown_resources()
    seconds = round(time.perf_counter() - started, 2)
    detail = (
        f"re-wrapped {report.rewrapped} in {report.batches} batches of {REKEY_BATCH}; "
        f"{len(report.failed)} failed, {report.remaining} left"
    )
    status = "ok" if report.complete and not report.failed else "failed"
    return [seeded, BatchResult("rekey_versions", report.rewrapped, seconds, status, detail, 30.0)]


def verify_audit_chain(
    service_url: str, env: dict[str, str], admin_token: str, events: int
) -> list[BatchResult]:
    """Grow the chain to `events` (in bulk, through the service's own chain code), then time
    `POST /api/v1/audit/verify` and `secretctl audit verify` over all of it. Where the whole
    chain is broken (a finding, reported), the bulk-grown range is verified and timed too."""
    seconds, first_grown = grow_audit_chain(env, events)
    results = []
    if first_grown <= events:  # not grown already under the data sets
        results.append(
            BatchResult("seed_audit_events", events - first_grown + 1, round(seconds, 1), "ok")
        )
    whole = verify_over_http("verify_audit_http", service_url, admin_token, {})
    results.append(whole)
    if whole.status != "ok":
        grown = {"from_seq": first_grown, "to_seq": events}
        results.append(verify_over_http("verify_audit_http_range", service_url, admin_token, grown))
    started = time.perf_counter()
    try:
        # The CLI of today calls the server (older ones read the database themselves).
        caller = env | {"SECRETS_ADDR": service_url, "SECRETS_TOKEN": admin_token}
        output = secretctl(caller, "audit", "verify", timeout=LONG_REQUEST_TIMEOUT)
    except HarnessError as error:  # a broken chain exits 1: a finding, reported as such
        results.append(BatchResult("verify_audit_cli", events, None, "failed", str(error), 30.0))
    else:
        seconds = time.perf_counter() - started
        results.append(
            BatchResult("verify_audit_cli", events, round(seconds, 2), "ok", output.strip(), 30.0)
        )
    return results


def verify_over_http(
    job: str, service_url: str, admin_token: str, chain_range: dict[str, int]
) -> BatchResult:
    started = time.perf_counter()
    response = requests.post(
        f"{service_url}/api/v1/audit/verify",
        json=chain_range,
        headers=bearer(admin_token),
        timeout=LONG_REQUEST_TIMEOUT,
    )
    seconds = round(time.perf_counter() - started, 2)
    if response.status_code != 200:
        detail = f"{response.status_code}: {response.text[:300]}"
        return BatchResult(job, 0, None, "failed", detail, 30.0)
    result = response.json()
    checked = f"{result['checked']} events ({result['first_seq']}..{result['last_seq']})"
    if not result["ok"]:
        broken = result["broken"]
        detail = f"broken at event {broken['seq']}: {broken['problem']}; checked {checked}"
        return BatchResult(job, result["checked"], seconds, "failed", detail, 30.0)
    return BatchResult(job, result["checked"], seconds, "ok", f"checked {checked}", 30.0)


def grow_audit_chain(env: dict[str, str], events: int) -> tuple[float, int]:
    """Append copies of the newest event (a real one) until the chain holds `events`, through
    `AuditChain.append` (hashes, checkpoints at their cadence) in large transactions.
    Returns the time it took and the first event it added."""
    container = Container(settings=load_settings(environ=env), environ=env)
    chain, clock = container.audit_chain(), container.clock()
    started = time.perf_counter()
    try:
        with container.unit_of_work() as uow:
            head_seq, _ = uow.audit.head()
            newest = next(uow.audit.events(from_seq=head_seq), None)
        if newest is None:
            raise HarnessError("the audit chain is empty: there is no event to copy")
        reported = first_grown = head_seq + 1
        while head_seq < events:
            with container.unit_of_work() as uow:
                for _ in range(APPEND_CHUNKS_PER_TRANSACTION):
                    # Chunks end on the checkpoint cadence, as the service's own appends do.
                    size = min(chain.every - head_seq % chain.every, events - head_seq)
                    if size <= 0:
                        break
                    now = clock.now()
                    chain.append(
                        uow,
                        [
                            replace(newest, time=now, request_id=uuid.uuid4().hex)
                            for _ in range(size)
                        ],
                    )
                    head_seq += size
                uow.commit()
            if head_seq - reported >= PROGRESS_EVERY:
                print(f"  audit chain: {head_seq:,} events", flush=True)
                reported = head_seq
    finally:
        container.shutdown_resources()
    return time.perf_counter() - started, first_grown
