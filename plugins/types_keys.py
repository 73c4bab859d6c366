"""Key material secret types: `certificate` (a PEM certificate, its chain and private key) and
`ssh_key` (an SSH private key and its passphrase).

A certificate's key must match it, and its notAfter is the value's expiry; its subject, issuer,
serial, validity and fingerprint are metadata. An SSH key must parse (with its passphrase when it
is encrypted); its public key and fingerprint are metadata.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import re
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from marshmallow import RAISE, Schema, fields, validate

from core.domain.values import SecretValue
from plugins.hookspecs import hookimpl
from plugins.secret_type_support import Fields, SchemaType, problem, value_text
from ports.types import SecretType, TypeCheck

# A PEM block's first line and last marker. Their label is the whole run of `[A-Z0-9 ]` (a dash
# ends it), so each position starts at most one: the lookahead finds them all, overlaps too.
PEM_BEGIN = re.compile(r"(?=-----BEGIN ([A-Z0-9 ]+)-----\r?\n)")
PEM_END = re.compile(r"(?=-----END ([A-Z0-9 ]+)-----)")
KEY_LABELS = frozenset(
    {"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"}
)
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class CertificateSchema(StrictSchema):
    certificate = fields.String(required=True, validate=validate.Length(1, 65536))
    private_key = fields.String(required=True, validate=validate.Length(1, 65536))
    chain = fields.String(validate=validate.Length(1, 65536))
    private_key_passphrase = fields.String(validate=validate.Length(1, 1024))


class CertificateType(SchemaType):
    """A PEM certificate with its private key: a JSON object of the fields, or one PEM bundle
    (the certificate first, then its chain, and the private key anywhere)."""

    name = "certificate"
    description = "a PEM certificate, its chain and its private key; notAfter is the expiry"
    schema = CertificateSchema
    sensitive_fields = frozenset({"private_key", "private_key_passphrase"})

    def load(self, value: SecretValue) -> Fields | TypeCheck:
        text = value_text(value)
        if text is not None and not text.lstrip().startswith("{"):
            return self._bundle_fields(text)
        return super().load(value)

    def inspect(self, fields: Fields) -> TypeCheck:
        try:
            certificate, *_ = x509.load_pem_x509_certificates(fields["certificate"].encode())
        except ValueError:
            return problem("certificate", "is not a PEM certificate")
        if "chain" in fields:
            try:
                x509.load_pem_x509_certificates(fields["chain"].encode())
            except ValueError:
                return problem("chain", "is not a sequence of PEM certificates")
        key = _private_key(fields["private_key"], fields.get("private_key_passphrase"))
        if isinstance(key, TypeCheck):
            return key
        if key.public_key().public_bytes(*SPKI) != certificate.public_key().public_bytes(*SPKI):
            return problem("private_key", "does not match the certificate")
        return TypeCheck(
            metadata=_certificate_metadata(certificate),
            expires_at=certificate.not_valid_after_utc,
        )

    @staticmethod
    def _bundle_fields(text: str) -> Fields | TypeCheck:
        blocks = pem_blocks(text)
        certificates = [block for label, block in blocks if label == "CERTIFICATE"]
        keys = [block for label, block in blocks if label in KEY_LABELS]
        if not certificates:
            return problem("certificate", "the bundle holds no PEM certificate")
        if len(keys) != 1:
            return problem("private_key", "the bundle must hold exactly one PEM private key")
        found: Fields = {"certificate": certificates[0], "private_key": keys[0]}
        if len(certificates) > 1:
            found["chain"] = "".join(certificates[1:])
        return found


def pem_blocks(text: str) -> list[tuple[str, str]]:
    """The PEM blocks of `text`, each as its label and its text: from a `-----BEGIN <label>-----`
    line to the first `-----END <label>-----` after it (and the line break after that), the
    next one searched after it. In time linear in the text (bar a log): a lazy regex from each
    BEGIN to its END searched the rest of the text from every BEGIN without one, quadratic."""
    ends: dict[str, list[int]] = {}
    for end in PEM_END.finditer(text):
        ends.setdefault(end.group(1), []).append(end.start())
    blocks = []
    searched_from = 0
    for begin in PEM_BEGIN.finditer(text):
        start, label = begin.start(), begin.group(1)
        if start < searched_from or label not in ends:
            continue
        body = text.index("\n", start) + 1
        candidates = ends[label]
        found = bisect.bisect_left(candidates, body)
        if found == len(candidates):
            continue
        stop = candidates[found] + len(f"-----END {label}-----")
        for line_break in "\r\n":
            if text.startswith(line_break, stop):
                stop += 1
        blocks.append((label, text[start:stop]))
        searched_from = stop
    return blocks


def _private_key(pem: str, passphrase: str | None) -> Any:
    """The private key of a PEM block, or the check that says why it cannot be read."""
    try:
        return serialization.load_pem_private_key(
            pem.encode(), passphrase.encode() if passphrase else None
        )
    except TypeError:  # encrypted without a passphrase, or a passphrase for a plain key
        if passphrase:
            return problem("private_key_passphrase", "is given but the key is not encrypted")
        return problem("private_key_passphrase", "the key is encrypted: give its passphrase")
    except (ValueError, UnsupportedAlgorithm):
        return problem("private_key", "is not a PEM private key, or the passphrase is wrong")


def _certificate_metadata(certificate: x509.Certificate) -> dict[str, str]:
    metadata = {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial": format(certificate.serial_number, "x"),
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "fingerprint_sha256": certificate.fingerprint(hashes.SHA256()).hex(),
    }
    try:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if names:
        metadata["dns_names"] = ",".join(names)
    return metadata


class SshKeySchema(StrictSchema):
    private_key = fields.String(required=True, validate=validate.Length(1, 65536))
    passphrase = fields.String(validate=validate.Length(1, 1024))


class SshKeyType(SchemaType):
    name = "ssh_key"
    description = "an SSH private key (OpenSSH or PEM), optionally encrypted with a passphrase"
    schema = SshKeySchema
    text_field = "private_key"
    sensitive_fields = frozenset({"private_key", "passphrase"})

    def inspect(self, fields: Fields) -> TypeCheck:
        data = fields["private_key"].encode()
        passphrase = fields["passphrase"].encode() if "passphrase" in fields else None
        loader = (
            serialization.load_ssh_private_key
            if b"BEGIN OPENSSH PRIVATE KEY" in data
            else serialization.load_pem_private_key
        )
        try:
            key = loader(data, passphrase)
        except TypeError:
            if passphrase:
                return problem("passphrase", "is given but the key is not encrypted")
            return problem("passphrase", "the key is encrypted: give its passphrase")
        except (ValueError, UnsupportedAlgorithm):
            return problem("private_key", "is not an SSH private key, or the passphrase is wrong")
        try:
            public = key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
        except ValueError:
            return problem("private_key", "is a kind of key SSH does not use")
        key_type, blob = public.split()[:2]
        digest = hashlib.sha256(base64.b64decode(blob)).digest()
        metadata = {
            "key_type": key_type.decode(),
            "fingerprint": "SHA256:" + base64.b64encode(digest).decode().rstrip("="),
            "public_key": public.decode(),
        }
        if isinstance(key, rsa.RSAPrivateKey):
            metadata["bits"] = str(key.key_size)
        return TypeCheck(metadata=metadata)


@hookimpl
def secret_management_register_secret_types() -> list[SecretType]:
    return [CertificateType(), SshKeyType()]
