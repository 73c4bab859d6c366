"""A small consumer service that reads its secrets through `secret_management_client`.

At start it resolves its project's secrets (one request) and reads its signing key by
reference; on each request it reads them again from the client's in-process cache, which the
client's watcher refreshes when a secret changes (a rotation is picked up without a restart).

    GET /sign?message=…  {"signature": HMAC-SHA256(signing key, message), "key_version": N}
    GET /status          the versions of the secrets it holds and what the client did
    GET /healthz         {"status": "ok"}

It never answers, logs or prints a secret value. Configuration (environment):
    SECRETS_ADDR, SECRETS_TOKEN   the secret service and a token that may read the secrets
    CONSUMER_SIGNING_KEY_REF      the signing key's reference, e.g. secret://project/shop/SIGNING_KEY
    CONSUMER_PROJECT              the project whose secrets it resolves (optional)
    CONSUMER_ENVIRONMENT          their environment (optional)
    CONSUMER_CACHE_TTL            seconds a value is served before it is revalidated (30)
    CONSUMER_PORT                 where it listens (8081)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from secret_management_client import Client, SecretManagementError

log = logging.getLogger("consumer-service")


class ConsumerService:
    def __init__(self, client: Client, signing_key_ref: str, project: str | None, env: str | None):
        self.client = client
        self.signing_key_ref = signing_key_ref
        self.project = project
        self.environment = env
        # At start: fail fast when the secrets cannot be read.
        self.client.get(signing_key_ref)
        if project:
            resolved = self.client.resolve(project=project, environment=env)
            log.info("resolved %d secrets of project %s", len(resolved), project)

    def sign(self, message: str) -> dict[str, Any]:
        key = self.client.get(self.signing_key_ref)  # from the cache: microseconds
        digest = hmac.new(key.bytes(), message.encode(), hashlib.sha256).hexdigest()
        return {"signature": digest, "key_version": key.version}

    def status(self) -> dict[str, Any]:
        versions = {"signing_key": self.client.get(self.signing_key_ref).version}
        if self.project:
            resolved = self.client.resolve(project=self.project, environment=self.environment)
            versions |= {name: value.version for name, value in resolved.items()}
        stats = self.client.stats
        return {
            "pid": os.getpid(),
            "versions": versions,
            "client": {
                "requests": stats.requests,
                "events": stats.events,
                "not_modified": stats.not_modified,
                "fallbacks": stats.fallbacks,
            },
        }


def handler_for(service: ConsumerService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            try:
                if url.path == "/sign":
                    message = parse_qs(url.query).get("message", [""])[0]
                    self.answer(200, service.sign(message))
                elif url.path == "/status":
                    self.answer(200, service.status())
                elif url.path == "/healthz":
                    self.answer(200, {"status": "ok"})
                else:
                    self.answer(404, {"error": "not found"})
            except SecretManagementError as error:  # its message never holds a value
                self.answer(503, {"error": error.code or "secrets_unavailable"})

        def answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.command, urlsplit(self.path).path)  # never a query string

    return Handler


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = Client(watch=True, cache_ttl=float(os.environ.get("CONSUMER_CACHE_TTL", "30")))
    service = ConsumerService(
        client,
        os.environ["CONSUMER_SIGNING_KEY_REF"],
        os.environ.get("CONSUMER_PROJECT"),
        os.environ.get("CONSUMER_ENVIRONMENT"),
    )
    port = int(os.environ.get("CONSUMER_PORT", "8081"))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(service))
    log.info("consumer service listening on http://127.0.0.1:%d", port)
    try:
        server.serve_forever()
    finally:
        client.close()


if __name__ == "__main__":
    main()
