"""The change stream under many consumers: `secretctl serve` (production settings, durable
PostgreSQL) with `--clients` Server-Sent Event streams open at once, a secret rotated every
`--interval` seconds for `--minutes`, and for every rotation how long each client took to see it;
the server's memory sampled all along.

    .venv/bin/python -m benchmarks.stream_probe [--clients 100] [--minutes 10] [--interval 5]

Issue #18's target: a rotation reaches 100 connected clients within 1 s of its commit, with the
server's memory flat over a 10-minute run. The latency is measured from the moment the rotation
request was SENT (its commit is later), so it is an upper bound of commit-to-delivery. The clients
are one asyncio loop in this process (raw HTTP/1.1, chunked transfer decoded by hand) so that
they cost the server's two CPUs as little as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks import servers
from benchmarks.seed import Api, bearer, identity_token
from tests.support.postgres import free_port

ADMIN = "stream-admin"
CONNECT_TIMEOUT = 30.0


@dataclass
class Client:
    """One consumer: when each event id arrived, and how its stream went."""

    arrived: dict[int, float] = field(default_factory=dict)
    status: int | None = None
    ended: str | None = None


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """One chunk of a chunked body (b"" at its end)."""
    size_line = await reader.readline()
    if not size_line:
        return b""
    size = int(size_line.split(b";")[0].strip() or b"0", 16)
    if size == 0:
        return b""
    data = await reader.readexactly(size + 2)
    return data[:-2]


async def follow(url: str, token: str, client: Client, ready: asyncio.Event) -> None:
    """Open the stream and record the arrival of every event until cancelled."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        (
            f"GET /api/v1/events/stream HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    try:
        status_line = await reader.readline()
        client.status = int(status_line.split()[1])
        chunked = False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if client.status != 200:
            client.ended = f"status {client.status}"
            return
        buffer = b""
        while True:
            data = await (read_chunked(reader) if chunked else reader.read(65536))
            if not data:
                client.ended = "closed by the server"
                return
            now = time.monotonic()
            buffer += data
            if not ready.is_set() and b"retry:" in buffer:
                ready.set()
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                for line in event.split(b"\n"):
                    if line.startswith(b"id: "):
                        client.arrived[int(line[4:])] = now
    finally:
        writer.close()


def server_memory(pid: int) -> dict[int, float]:
    """Resident MiB of the server's main process and every process below it."""
    found = {pid: servers.rss_mib(pid)}
    for child in servers.children_of(pid):
        found |= server_memory(child)
    return found


@dataclass
class Rotation:
    sent: float
    answered: float
    event_id: int | None = None


async def run(url: str, token: str, admin: Api, secret: str, pid: int, args: argparse.Namespace):
    clients = [Client() for _ in range(args.clients)]
    readies = [asyncio.Event() for _ in clients]
    tasks = [
        asyncio.create_task(follow(url, token, client, ready))
        for client, ready in zip(clients, readies, strict=True)
    ]
    started = time.monotonic()
    waits = [asyncio.create_task(ready.wait()) for ready in readies]
    await asyncio.wait(waits, timeout=CONNECT_TIMEOUT)
    connected = sum(ready.is_set() for ready in readies)
    print(
        f"{connected}/{len(clients)} streams open in {time.monotonic() - started:.1f} s "
        f"(refused: {sum(1 for c in clients if c.status not in (None, 200))})",
        flush=True,
    )
    memory = [(0.0, server_memory(pid))]
    rotations: list[Rotation] = []
    deadline = time.monotonic() + args.minutes * 60
    next_sample = time.monotonic() + args.sample
    n = 0
    while time.monotonic() < deadline:
        n += 1
        sent = time.monotonic()
        body = {"value": f"rotated-{n}-{os.urandom(8).hex()}"}
        await asyncio.to_thread(admin.call, "POST", f"/secrets/{secret}/rotate", 201, json=body)
        rotations.append(Rotation(sent, time.monotonic()))
        while time.monotonic() < min(sent + args.interval, deadline):
            await asyncio.sleep(0.1)
            if time.monotonic() >= next_sample:
                memory.append((time.monotonic() - started, server_memory(pid)))
                next_sample += args.sample
    await asyncio.sleep(2)  # the last rotation's stragglers
    memory.append((time.monotonic() - started, server_memory(pid)))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    report(clients, rotations, memory, connected)


def report(
    clients: list[Client],
    rotations: list[Rotation],
    memory: list[tuple[float, dict[int, float]]],
    connected: int,
) -> None:
    ids = sorted({event for client in clients for event in client.arrived})
    # The n-th rotation made the n-th new event id (nothing else changes during the run).
    latencies: list[float] = []
    worst_per_rotation = []
    missed = 0
    for rotation, event_id in zip(rotations, ids, strict=False):
        arrivals = [c.arrived[event_id] for c in clients if event_id in c.arrived]
        missed += connected - len(arrivals)
        latencies.extend(arrival - rotation.sent for arrival in arrivals)
        if arrivals:
            worst_per_rotation.append(max(arrivals) - rotation.sent)
    print(f"rotations: {len(rotations)}, events seen: {len(ids)}, deliveries missed: {missed}")
    if latencies:
        latencies.sort()
        write_ms = statistics.median(r.answered - r.sent for r in rotations) * 1000
        print(
            "delivery after the rotation request was sent (ms): "
            f"p50 {latencies[len(latencies) // 2] * 1000:.0f}, "
            f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f}, "
            f"max {latencies[-1] * 1000:.0f}; the last of {connected} clients, per rotation: "
            f"median {statistics.median(worst_per_rotation) * 1000:.0f}, "
            f"max {max(worst_per_rotation) * 1000:.0f}; the rotation's own request "
            f"{write_ms:.0f} ms"
        )
    within = sum(1 for worst in worst_per_rotation if worst <= 1.0)
    print(f"rotations delivered to every open client within 1 s: {within}/{len(rotations)}")
    print("server memory (resident MiB, each process: main first, then workers):")
    for at, sample in memory:
        print(f"  {at:7.0f} s  " + "  ".join(f"{mib:6.1f}" for mib in sample.values()))
    first, last = memory[0][1], memory[-1][1]
    grown = {pid: last[pid] - first[pid] for pid in last if pid in first}
    grown_mib = {str(pid): round(mib, 1) for pid, mib in grown.items()}
    print(f"grown over the run (MiB): {json.dumps(grown_mib)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between rotations")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stream-probe-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        [database_url] = stack.enter_context(servers.postgres_databases(None, True, 1))
        env = servers.service_environment(database_url, workdir, free_port(), args.workers)
        process = stack.enter_context(servers.service(env, workdir))
        servers.secretctl(env, "admin", "grant", "--principal", f"user:{ADMIN}", "--role", "admin")
        key = env[servers.JWT_KEY_VARIABLE]
        admin = Api(f"{process.url}/api/v1", bearer(identity_token(ADMIN, key)))
        scope = {"type": "global"}
        body = {"name": "ROTATED", "scope": scope, "value": "first"}
        secret = admin.call("POST", "/secrets", 201, json=body)["id"]
        account = admin.call("POST", "/service-accounts", 201, json={"name": "c", "scope": scope})
        binding = {"principal": account["principal"], "role": "reader", "scope": scope}
        admin.call("POST", "/role-bindings", 201, json=binding)
        path = f"/service-accounts/{account['id']}/tokens"
        token = admin.call("POST", path, 201, json={})["token"]
        asyncio.run(run(process.url, token, admin, secret, process.popen.pid, args))


if __name__ == "__main__":
    main()
