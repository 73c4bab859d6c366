"""`SecretValue`: a value that never prints, pickles or lands in a message."""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any, NoReturn


class SecretValue:
    """One secret's value with what the server said about it. `repr`/`str`/`format` show
    `SecretValue(****)`; pickling and copying out of the process raise `TypeError`.
    Read it with `.text()`, `.bytes()` or `.json()` (a typed secret — `aws_credentials`,
    `certificate` … — is a JSON object of its fields: `.json()["secret_access_key"]`,
    `.json()["certificate"]`, `["chain"]`, `["private_key"]`)."""

    __slots__ = ("_raw", "encoding", "expires_at", "name", "reference", "secret_id", "version")

    def __init__(
        self,
        raw: bytes,
        *,
        encoding: str = "utf-8",
        name: str | None = None,
        reference: str | None = None,
        secret_id: str | None = None,
        version: int | None = None,
        expires_at: str | None = None,
    ) -> None:
        self._raw = raw
        self.encoding = encoding
        self.name = name
        self.reference = reference
        self.secret_id = secret_id
        self.version = version
        self.expires_at = expires_at

    @classmethod
    def from_answer(cls, answer: dict[str, Any], reference: str | None = None) -> SecretValue:
        """From the server's `{"value", "encoding", …}` (a value read or a resolve entry)."""
        text = answer.get("value")
        encoding = answer.get("encoding") or "utf-8"
        if text is None:
            raw = b""
        elif encoding == "base64":
            raw = base64.b64decode(text)
        else:
            raw = str(text).encode("utf-8")
        return cls(
            raw,
            encoding=encoding,
            name=answer.get("name"),
            reference=answer.get("reference") or reference,
            secret_id=str(answer["id"]) if answer.get("id") else answer.get("secret_id"),
            version=answer.get("version"),
            expires_at=answer.get("expires_at"),
        )

    def bytes(self) -> bytes:
        return self._raw

    def text(self, encoding: str = "utf-8") -> str:
        return self._raw.decode(encoding)

    def json(self) -> Any:
        """The value parsed as JSON: a typed secret's fields as a mapping. A value that is not
        JSON raises `ValueError` without its content."""
        try:
            return json.loads(self._raw)
        except ValueError:
            raise ValueError("the secret's value is not JSON") from None

    def __repr__(self) -> str:
        return "SecretValue(****)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretValue):
            return hmac.compare_digest(self._raw, other._raw)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self._raw)

    def __bool__(self) -> bool:
        return True

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled or copied out of the process")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled or copied out of the process")

    def __copy__(self) -> SecretValue:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretValue:
        return self
