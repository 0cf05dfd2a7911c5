"""Encryption of personal data at rest and keyed hashes for looking it up.

Phone numbers (and provider credentials) are stored as Fernet tokens (AES-128-CBC +
HMAC-SHA256), so a leaked database dump does not reveal who wrote to the hotline. Equality
lookups use an HMAC of the normalised value, because Fernet tokens are randomised.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from core.settings import SettingsError, get_settings


class DecryptionError(RuntimeError):
    """A stored value could not be decrypted with any configured DEME_PII_KEY."""


def _key_list(raw: str) -> list[bytes]:
    return [part.strip().encode() for part in raw.split(",") if part.strip()]


@lru_cache(maxsize=4)
def _fernet_for(raw_keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in _key_list(raw_keys)])
    except (ValueError, TypeError) as exc:
        raise SettingsError(
            "DEME_PII_KEY: each key must be 32 url-safe base64-encoded bytes "
            "(generate one with `deme generate-key`)"
        ) from exc


@lru_cache(maxsize=4)
def _lookup_key_for(raw_keys: str) -> bytes:
    # Derived from the first key: rotating keys means re-hashing (see README, "Key rotation").
    first = _key_list(raw_keys)[0]
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"deme-lookup-hash", info=b"v1").derive(
        first
    )


@lru_cache(maxsize=4)
def _search_key_for(raw_keys: str) -> bytes:
    # A key of its own for the search index, so a word hash never equals a phone hash.
    first = _key_list(raw_keys)[0]
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"deme-search-index", info=b"v1").derive(
        first
    )


def _raw_keys() -> str:
    return get_settings().pii_key.get_secret_value()


def validate_pii_key() -> None:
    """Raise SettingsError early (at start-up) when DEME_PII_KEY is malformed."""
    _fernet_for(_raw_keys())


def encrypt_text(plaintext: str) -> str:
    return _fernet_for(_raw_keys()).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_text(token: str) -> str:
    try:
        return _fernet_for(_raw_keys()).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise DecryptionError("stored value cannot be decrypted with DEME_PII_KEY") from exc


@lru_cache(maxsize=8)
def _purpose_fernet(raw_keys: str, purpose: str) -> Fernet:
    first = _key_list(raw_keys)[0]
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"deme-url-token", info=purpose.encode()
    ).derive(first)
    return Fernet(base64.urlsafe_b64encode(key))


def seal(plaintext: str, purpose: str) -> str:
    """An opaque, URL-safe token carrying ``plaintext`` for one ``purpose`` (e.g. a phone
    filter in a console URL). Its key is derived from DEME_PII_KEY but differs from the
    column key, so a token cannot be used to decrypt stored data, nor serve another purpose."""
    return _purpose_fernet(_raw_keys(), purpose).encrypt(plaintext.encode("utf-8")).decode("ascii")


def unseal(token: str, purpose: str, *, max_age_seconds: int) -> str:
    """The text of a :func:`seal` token; DecryptionError if forged, foreign or too old."""
    try:
        data = token.encode("ascii")
        return (
            _purpose_fernet(_raw_keys(), purpose).decrypt(data, ttl=max_age_seconds).decode("utf-8")
        )
    except (InvalidToken, UnicodeError) as exc:
        raise DecryptionError("token is invalid or expired") from exc


def lookup_hash(value: str) -> str:
    """Keyed, deterministic hash of an already-normalised value (e.g. an E.164 number)."""
    return hmac.new(_lookup_key_for(_raw_keys()), value.encode("utf-8"), hashlib.sha256).hexdigest()


# Hex digits kept per word: 64 bits, so two words collide about once in 10^19 pairs, and a
# ticket's index stays short (17 characters a word).
SEARCH_HASH_LENGTH = 16


@lru_cache(maxsize=4)
def _search_hmac_for(raw_keys: str) -> hmac.HMAC:
    return hmac.new(_search_key_for(raw_keys), digestmod=hashlib.sha256)


def search_hash(word: str) -> str:
    """Keyed hash of one already-folded word (the search index's blind entries)."""
    digest = _search_hmac_for(_raw_keys()).copy()  # the keyed state, without re-keying
    digest.update(word.encode("utf-8"))
    return digest.hexdigest()[:SEARCH_HASH_LENGTH]


def rotate_token(token: str) -> str:
    """``token`` re-encrypted with the newest key (readable with any configured key)."""
    try:
        return _fernet_for(_raw_keys()).rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise DecryptionError("stored value cannot be decrypted with DEME_PII_KEY") from exc


def is_current_token(token: str) -> bool:
    """Whether ``token`` already decrypts with the newest key (nothing to rotate)."""
    newest = Fernet(_key_list(_raw_keys())[0])
    try:
        newest.decrypt(token.encode("ascii"))
    except InvalidToken:
        return False
    return True


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class EncryptedText(TypeDecorator[str]):
    """A string column stored encrypted; Python code only ever sees the clear text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else encrypt_text(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else decrypt_text(value)


class EncryptedJSON(TypeDecorator[dict[str, Any]]):
    """A JSON object stored encrypted (provider credentials, alert targets)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else encrypt_text(json.dumps(value, sort_keys=True))

    def process_result_value(self, value: str | None, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        decoded: dict[str, Any] = json.loads(decrypt_text(value))
        return decoded
