"""`Client`: reads secrets for a consumer service, through an in-process cache that is
revalidated after `cache_ttl`, served stale while one background refresh runs, kept as the last
good value while the service is unreachable, and refreshed on change by a watcher thread."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from secret_management_client.errors import (
    BY_STATUS,
    Forbidden,
    Gone,
    NotFound,
    SecretManagementError,
    Unavailable,
)
from secret_management_client.reference import Reference, parse_reference
from secret_management_client.value import SecretValue

log = logging.getLogger("secret_management_client")

USER_AGENT = "secret-management-client/0.1.0"
BATCH_LIMIT = 100
ERRORS_BY_CODE: dict[str, type[SecretManagementError]] = {
    "unauthenticated": BY_STATUS[401],
    "forbidden": Forbidden,
    "not_found": NotFound,
    "expired": Gone,
    "gone": Gone,
}
_clients: weakref.WeakSet[Client] = weakref.WeakSet()


@dataclass(slots=True)
class _Entry:
    """A cached answer: a `SecretValue` (a reference) or a `dict[str, SecretValue]` (a
    resolve). `fresh_until`/`stale_until` are `time.monotonic()` deadlines."""

    value: Any
    fresh_until: float
    stale_until: float
    base: str | None = None  # the secret's canonical reference (a get)
    secret_ids: frozenset[str] = frozenset()
    etag: str | None = None
    signature: tuple[tuple[str, str, int], ...] = ()


@dataclass(slots=True)
class Stats:
    """What the client did, for tests and metrics: requests sent, 304 answers, revalidations
    that kept the value without reading it again (304 or the same version), background
    refreshes, answers served from the last good value, change events seen."""

    requests: int = 0
    not_modified: int = 0
    unchanged: int = 0
    refreshes: int = 0
    fallbacks: int = 0
    events: int = 0


class Client:
    """A client of the secret management service.

    `addr`/`token` default to `SECRETS_ADDR`/`SECRETS_TOKEN`. `cache_ttl` (seconds) is how long
    a value is served without asking the server; then it is revalidated. Within
    `stale_while_revalidate` more seconds the old value is served while one background refresh
    runs. With `fallback_to_last_good` the last good value is served while the service is
    unreachable (connection errors, 502/503/504), with one warning per outage. `watch=True`
    follows the change stream in a background thread and refreshes what changed."""

    def __init__(
        self,
        addr: str | None = None,
        token: str | None = None,
        *,
        cache_ttl: float = 60.0,
        stale_while_revalidate: float = 30.0,
        fallback_to_last_good: bool = True,
        watch: bool = False,
        timeout: float = 10.0,
        verify: bool | str = True,
        watch_wait: int = 30,
    ) -> None:
        addr = addr or os.environ.get("SECRETS_ADDR")
        token = token if token is not None else os.environ.get("SECRETS_TOKEN")
        if not addr:
            raise SecretManagementError("no address: pass addr= or set SECRETS_ADDR", code="config")
        if not token:
            raise SecretManagementError("no token: pass token= or set SECRETS_TOKEN", code="config")
        self.addr = addr.rstrip("/")
        self._token = token
        self.cache_ttl = float(cache_ttl)
        self.stale_while_revalidate = float(stale_while_revalidate)
        self.fallback_to_last_good = fallback_to_last_good
        self.watch = watch
        self.timeout = timeout
        self.verify = verify
        self.watch_wait = watch_wait
        self.stats = Stats()
        self._closed = False
        self._reset_state()
        _clients.add(self)
        if watch:
            self._start_watcher()

    def __repr__(self) -> str:
        return f"Client(addr={self.addr!r}, watch={self.watch})"

    def __getstate__(self) -> Any:
        raise TypeError("a Client holds a token: it cannot be pickled")

    # -- state, fork safety -------------------------------------------------------------

    def _reset_state(self) -> None:
        """Fresh locks, HTTP sessions and no threads: at start and in a forked child (another
        thread may have held a lock at the fork; sockets and threads do not cross it)."""
        self._lock = threading.Lock()
        self._cache: dict[Any, _Entry] = getattr(self, "_cache", {})
        self._key_locks: dict[Any, threading.Lock] = {}
        self._refreshing: set[Any] = set()
        self._local = threading.local()
        self._features: dict[str, bool] = {}
        self._warned = False
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._cursor: str = "now"

    def _after_fork_in_child(self) -> None:
        self._reset_state()
        if self.watch and not self._closed:
            self._start_watcher()

    def close(self) -> None:
        """Stops the watcher and closes this thread's HTTP session."""
        self._closed = True
        self._stop.set()
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- HTTP -----------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(
                {"Authorization": f"Bearer {self._token}", "User-Agent": USER_AGENT}
            )
            session.verify = self.verify
            self._local.session = session
        return session

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        raise_for: bool = True,
        stream: bool = False,
    ) -> requests.Response:
        with self._lock:
            self.stats.requests += 1
        try:
            answer = self._session().request(
                method,
                self.addr + path,
                params=params,
                json=json,
                headers=headers,
                timeout=timeout or self.timeout,
                stream=stream,
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as error:
            raise Unavailable(
                f"the secret service at {self.addr} is unreachable ({type(error).__name__})",
                code="unreachable",
            ) from None
        except requests.RequestException as error:
            raise SecretManagementError(
                f"the request failed ({type(error).__name__})", code="request_failed"
            ) from None
        if raise_for and answer.status_code >= 400:
            raise error_of(answer)
        return answer

    def _has(self, feature: str) -> bool:
        """Whether the server has the reference endpoints (`references`, `batch`) or the
        change feed (`events`): asked once, by a request that reads nothing."""
        known = self._features.get(feature)
        if known is not None:
            return known
        if feature == "references":
            answer = self._request("GET", "/api/v1/references/value", raise_for=False)
        elif feature == "batch":
            answer = self._request(
                "POST", "/api/v1/references/values", json={"references": []}, raise_for=False
            )
        elif feature == "events":
            answer = self._request(
                "GET", "/api/v1/events", params={"after": "now", "wait": 0}, raise_for=False
            )
        else:  # "stream": its headers are enough
            answer = self._request("GET", "/api/v1/events/stream", raise_for=False, stream=True)
            answer.close()
        if answer.status_code in (401, 502, 503, 504):
            raise error_of(answer)
        present = answer.status_code not in (404, 405)
        self._features[feature] = present
        return present

    # -- the cache ------------------------------------------------------------------------

    def get(self, reference: str | Reference) -> SecretValue:
        """The value a reference names (`secret://project/p-7/DB_PASSWORD?env=production`),
        from the cache when fresh."""
        key = reference if isinstance(reference, str) else str(reference)
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and time.monotonic() < entry.fresh_until:
            value: SecretValue = entry.value
            return value
        served: SecretValue = self._serve(
            key, entry, lambda old: self._fetch_reference(parse_reference(key), old)
        )
        return served

    def get_many(self, references: Iterable[str | Reference]) -> dict[str, SecretValue]:
        """Several values, by reference: fresh ones from the cache, the rest in one batch
        request per 100 (`POST /references/values`) when the server has it, else one each."""
        keys = [r if isinstance(r, str) else str(r) for r in references]
        found: dict[str, SecretValue] = {}
        missing: list[str] = []
        now = time.monotonic()
        with self._lock:
            for key in keys:
                entry = self._cache.get(key)
                if entry is not None and now < entry.fresh_until:
                    found[key] = entry.value
                elif key not in missing:
                    missing.append(key)
        if missing and len(missing) > 1 and self._has("batch"):
            for start in range(0, len(missing), BATCH_LIMIT):
                self._fetch_batch(missing[start : start + BATCH_LIMIT], found)
        else:
            for key in missing:
                found[key] = self.get(key)
        return {key: found[key] for key in keys}

    def resolve(
        self,
        *,
        project: str | None = None,
        environment: str | None = None,
        team: str | None = None,
        organization: str | None = None,
        user: str | None = None,
    ) -> dict[str, SecretValue]:
        """The effective secrets of a context, by name, in ONE request
        (`/resolve?include_values=true`), cached like a value."""
        params = {
            name: value
            for name, value in (
                ("project", project),
                ("team", team),
                ("organization", organization),
                ("user", user),
                ("environment", environment),
            )
            if value is not None
        }
        key = ("resolve", tuple(sorted(params.items())))
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and time.monotonic() < entry.fresh_until:
            return dict(entry.value)
        return dict(self._serve(key, entry, lambda old: self._fetch_resolve(params, old)))

    def inject_env(
        self,
        *,
        project: str | None = None,
        environment: str | None = None,
        team: str | None = None,
        organization: str | None = None,
        overwrite: bool = False,
        environ: Any = None,
    ) -> list[str]:
        """Sets the context's secrets as environment variables, as the server maps them
        (`/resolve?variables=true`; a typed secret becomes the variables its type documents).
        Variables already set are kept unless `overwrite`. Returns the names set."""
        target = os.environ if environ is None else environ
        params: dict[str, Any] = {
            name: value
            for name, value in (
                ("project", project),
                ("team", team),
                ("organization", organization),
                ("environment", environment),
            )
            if value is not None
        }
        answer = self._request("GET", "/api/v1/resolve", params=params | {"variables": "true"})
        names: list[str] = []
        for item in answer.json().get("items", []):
            for name, text in (item.get("variables") or {}).items():
                if text is None or (name in target and not overwrite):
                    continue
                target[name] = text
                names.append(name)
        return names

    def invalidate(self, reference: str | None = None) -> None:
        """Forget one cached reference, or everything."""
        with self._lock:
            if reference is None:
                self._cache.clear()
            else:
                self._cache.pop(reference, None)

    def _serve(self, key: Any, entry: _Entry | None, fetch: Any) -> Any:
        """A stale or missing entry: within stale-while-revalidate the old value while one
        background refresh runs; otherwise a refresh now (one per key at a time)."""
        if self.watch and self._watcher is None and not self._closed:
            self._start_watcher()
        if entry is not None and time.monotonic() < entry.stale_until:
            self._refresh_in_background(key, fetch)
            return entry.value
        return self._refresh(key, fetch)

    def _key_lock(self, key: Any) -> threading.Lock:
        with self._lock:
            lock = self._key_locks.get(key)
            if lock is None:
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def _refresh(self, key: Any, fetch: Any, *, force: bool = False) -> Any:
        started = time.monotonic()
        with self._key_lock(key):
            with self._lock:
                entry = self._cache.get(key)
            if not force and entry is not None and entry.fresh_until > started:
                return entry.value  # another thread refreshed it while this one waited
            try:
                fresh = fetch(entry)
            except Unavailable as error:
                if not self.fallback_to_last_good or entry is None:
                    raise
                self._fall_back(key, entry, error)
                return entry.value
            except (NotFound, Gone, Forbidden, BY_STATUS[401]):
                with self._lock:
                    self._cache.pop(key, None)
                raise
            with self._lock:
                self._cache[key] = fresh
                if self._warned:
                    log.warning("the secret service answers again; the cache is refreshed")
                self._warned = False
            return fresh.value

    def _fall_back(self, key: Any, entry: _Entry, error: SecretManagementError) -> None:
        retry = min(self.cache_ttl, 5.0)
        with self._lock:
            self.stats.fallbacks += 1
            entry.fresh_until = time.monotonic() + retry
            entry.stale_until = entry.fresh_until
            first = not self._warned
            self._warned = True
        if first:
            log.warning(
                "the secret service is unavailable (%s); serving the last good values",
                error.code or error.status,
            )

    def _refresh_in_background(self, key: Any, fetch: Any, *, force: bool = False) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
            self.stats.refreshes += 1

        def run() -> None:
            try:
                self._refresh(key, fetch, force=force)
            except SecretManagementError as error:
                log.warning("refreshing a cached secret failed: %s", error.code or error.status)
            finally:
                with self._lock:
                    self._refreshing.discard(key)

        threading.Thread(target=run, name="secrets-refresh", daemon=True).start()

    def _entry(self, value: Any, **kwargs: Any) -> _Entry:
        now = time.monotonic()
        fresh = now + self.cache_ttl
        return _Entry(value, fresh, fresh + self.stale_while_revalidate, **kwargs)

    def _keep(self, entry: _Entry) -> _Entry:
        return self._entry(
            entry.value,
            base=entry.base,
            secret_ids=entry.secret_ids,
            etag=entry.etag,
            signature=entry.signature,
        )

    # -- fetching -------------------------------------------------------------------------

    def _fetch_reference(self, ref: Reference, old: _Entry | None) -> _Entry:
        environment = {"environment": ref.environment} if ref.environment else {}
        if old is not None and old.etag is None and ref.version is None and ref.stage is None:
            # Revalidate on the secret's metadata (no value read, no value audited): the same
            # current version is the same value.
            meta = self._request("GET", ref.path(), params=environment)
            if meta.json().get("current_version") == old.value.version:
                self._count_unchanged(False)
                return self._keep(old)
        if self._has("references"):
            headers = {"If-None-Match": old.etag} if old is not None and old.etag else None
            answer = self._request(
                "GET", "/api/v1/references/value", params={"ref": str(ref)}, headers=headers
            )
            if answer.status_code == 304 and old is not None:
                self._count_unchanged(True)
                return self._keep(old)
            value = SecretValue.from_answer(answer.json(), ref.base)
            return self._entry(
                value,
                base=ref.base,
                secret_ids=frozenset({value.secret_id} if value.secret_id else ()),
                etag=answer.headers.get("ETag"),
            )
        if ref.stage is not None:
            raise SecretManagementError(
                "a stage selector needs the server's /references/value endpoint",
                code="unsupported",
            )
        params = environment | ({"version": ref.version} if ref.version is not None else {})
        answer = self._request("GET", ref.path() + "/value", params=params)
        value = SecretValue.from_answer(answer.json(), ref.base)
        return self._entry(
            value,
            base=ref.base,
            secret_ids=frozenset({value.secret_id} if value.secret_id else ()),
        )

    def _fetch_batch(self, keys: list[str], found: dict[str, SecretValue]) -> None:
        refs = {key: parse_reference(key) for key in keys}
        answer = self._request(
            "POST",
            "/api/v1/references/values",
            json={"references": [str(r) for r in refs.values()]},
        )
        items = answer.json().get("items", [])
        request_id = answer.headers.get("X-Request-Id")
        for key, item in zip(keys, items, strict=False):
            if "error" in item:
                code = item["error"].get("code", "error")
                raise ERRORS_BY_CODE.get(code, SecretManagementError)(
                    f"{item.get('reference', key)}: {item['error'].get('message', code)}",
                    code=code,
                    request_id=request_id,
                )
            value = SecretValue.from_answer(item, refs[key].base)
            found[key] = value
            entry = self._entry(
                value,
                base=refs[key].base,
                secret_ids=frozenset({value.secret_id} if value.secret_id else ()),
            )
            with self._lock:
                self._cache[key] = entry

    def _fetch_resolve(self, params: dict[str, Any], old: _Entry | None) -> _Entry:
        if old is not None:
            # The metadata-only answer has a weak ETag: 304 while nothing changed.
            headers = {"If-None-Match": old.etag} if old.etag else None
            meta = self._request("GET", "/api/v1/resolve", params=params, headers=headers)
            if meta.status_code == 304:
                self._count_unchanged(True)
                return self._keep(old)
            if signature_of(meta.json().get("items", [])) == old.signature:
                self._count_unchanged(False)
                kept = self._keep(old)
                kept.etag = meta.headers.get("ETag")
                return kept
        answer = self._request("GET", "/api/v1/resolve", params=params | {"include_values": "true"})
        items = answer.json().get("items", [])
        values = {
            item["name"]: SecretValue.from_answer(item)
            for item in items
            if item.get("value") is not None
        }
        return self._entry(
            values,
            secret_ids=frozenset(str(item["id"]) for item in items),
            signature=signature_of(items),
        )

    def _count_unchanged(self, not_modified: bool) -> None:
        with self._lock:
            self.stats.unchanged += 1
            self.stats.not_modified += int(not_modified)

    # -- refresh on change ----------------------------------------------------------------

    def _start_watcher(self) -> None:
        with self._lock:
            if self._watcher is not None:
                return
            self._stop = threading.Event()
            self._watcher = threading.Thread(
                target=self._watch, name="secrets-watcher", daemon=True
            )
        self._watcher.start()

    def _watch(self) -> None:
        """Long polling on `GET /api/v1/events?after=&wait=` (resuming at the last cursor),
        reconnecting with backoff; a server without the feed is polled every `cache_ttl`."""
        delay = 1.0
        stop = self._stop
        while not stop.is_set():
            try:
                if not self._has("events"):
                    if self._has("stream"):
                        self._follow_stream(stop)
                        delay = 1.0
                        continue
                    if stop.wait(max(self.cache_ttl, 1.0)):
                        return
                    self.revalidate_all()
                    continue
                answer = self._request(
                    "GET",
                    "/api/v1/events",
                    params={"after": self._cursor, "wait": self.watch_wait},
                    timeout=self.watch_wait + self.timeout,
                )
                body = answer.json()
                for event in body.get("items", []):
                    self._on_event(event)
                if body.get("next") is not None:
                    self._cursor = str(body["next"])
                delay = 1.0
            except SecretManagementError as error:
                if error.status is not None and error.status < 500 and error.status != 429:
                    self._cursor = "now"  # e.g. a cursor the server no longer keeps
                    self.revalidate_all()
                log.warning("the change feed failed (%s); retrying", error.code or error.status)
                jitter = random.uniform(0, delay / 2)  # noqa: S311 - jitter, not a secret
                if stop.wait(delay + jitter):
                    return
                delay = min(delay * 2, 30.0)
            except Exception:
                log.exception("the change feed's answer could not be read; retrying")
                if stop.wait(delay):
                    return
                delay = min(delay * 2, 30.0)

    def _follow_stream(self, stop: threading.Event) -> None:
        """Server-Sent Events on `GET /api/v1/events/stream`, resuming with `Last-Event-ID`;
        returns when the connection ends (the caller reconnects)."""
        headers = {"Accept": "text/event-stream"}
        if self._cursor != "now":
            headers["Last-Event-ID"] = self._cursor
        answer = self._request(
            "GET",
            "/api/v1/events/stream",
            headers=headers,
            stream=True,
            timeout=max(self.timeout, 45.0),  # keepalives come every 15 s
        )
        try:
            self._read_stream(answer, stop)
        except requests.RequestException:  # the connection broke: the caller reconnects
            log.info("the change stream's connection ended; reconnecting")
        finally:
            answer.close()

    def _read_stream(self, answer: requests.Response, stop: threading.Event) -> None:
        """Events from a Server-Sent Events answer until it ends or the client closes."""
        data: list[str] = []
        event_id: str | None = None
        for raw in answer.iter_lines():
            line = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            if stop.is_set():
                return
            if not line:  # the end of an event
                if data:
                    self._on_event(json.loads("\n".join(data)))
                if event_id is not None:
                    self._cursor = event_id
                data, event_id = [], None
            elif line.startswith(":"):
                continue  # a keepalive
            else:
                name, _, text = line.partition(":")
                text = text.removeprefix(" ")
                if name == "data":
                    data.append(text)
                elif name == "id":
                    event_id = text

    def _on_event(self, event: Mapping[str, Any]) -> None:
        """Refreshes the cached entries an event concerns: those of its secret, and every
        resolve (a new or deleted secret may change what a context resolves to)."""
        secret = event.get("secret") or {}
        reference, secret_id = secret.get("reference"), str(secret.get("id"))
        with self._lock:
            self.stats.events += 1
            keys = [
                key
                for key, entry in self._cache.items()
                if isinstance(key, tuple)
                or entry.base == reference
                or secret_id in entry.secret_ids
            ]
        for key in keys:
            self._refresh_key(key, wait=False)

    def revalidate_all(self) -> None:
        """Revalidates every cached entry now (in this thread)."""
        with self._lock:
            keys = list(self._cache)
        for key in keys:
            try:
                self._refresh_key(key, wait=True)
            except SecretManagementError as error:
                log.warning("revalidating a cached secret failed: %s", error.code or error.status)

    def _refresh_key(self, key: Any, *, wait: bool) -> None:
        if isinstance(key, tuple):
            params = dict(key[1])

            def fetch(old: _Entry | None) -> _Entry:
                return self._fetch_resolve(params, old)
        else:

            def fetch(old: _Entry | None) -> _Entry:
                return self._fetch_reference(parse_reference(key), old)

        if wait:
            self._refresh(key, fetch, force=True)
        else:
            self._refresh_in_background(key, fetch, force=True)


def signature_of(items: list[dict[str, Any]]) -> tuple[tuple[str, str, int], ...]:
    return tuple(sorted((item["name"], str(item["id"]), item["version"]) for item in items))


def error_of(answer: requests.Response) -> SecretManagementError:
    """The typed error of an answer: the server's code, message and request id."""
    request_id = answer.headers.get("X-Request-Id")
    code, message = None, f"HTTP {answer.status_code}"
    try:
        error = answer.json().get("error") or {}
        code = error.get("code")
        message = error.get("message") or message
        request_id = error.get("request_id") or request_id
    except ValueError:
        pass
    kind = BY_STATUS.get(answer.status_code, SecretManagementError)
    return kind(message, status=answer.status_code, code=code, request_id=request_id)


def _after_fork_in_child() -> None:
    for client in list(_clients):
        client._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
