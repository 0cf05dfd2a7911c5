"""The disk spool: accepted webhooks that could not reach the database.

When PostgreSQL is unreachable the webhook still answers success — the provider would
otherwise retry for a while and then drop the message — after writing the verified,
normalised request here: one JSON file per request, written to a temporary name, fsync'd,
atomically renamed, and the directory fsync'd, so a file that exists is complete and
survives a power cut. The payload holds a phone number, so it is Fernet-encrypted with the
PII key like the database columns.

``replay_spool`` (beat task ``gateway.replay_spool``) feeds the files back through the same
idempotent recording as the webhook — a request spooled twice, or also stored by a retry that
reached the database, still makes one message — and deletes each file once committed.
Runs never overlap (``core.locks.single_run``); a file already gone is skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from core.crypto import decrypt_text, encrypt_text
from core.locks import single_run
from core.settings import get_settings
from models.base import utcnow

log = logging.getLogger(__name__)

KIND_SMS = "sms"
KIND_STATUS = "status"
KIND_CALL = "call"


def spool_dir() -> Path:
    return get_settings().var_dir / "spool"


def write(kind: str, payload: dict[str, Any]) -> Path:
    folder = spool_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    final = folder / f"{stamp}-{kind}-{uuid.uuid4().hex}.json"
    temporary = folder / f".{final.name}.tmp"
    data = json.dumps({"kind": kind, "payload": payload}, ensure_ascii=False)
    blob = encrypt_text(data).encode("ascii")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, blob)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, final)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself must survive a crash
    finally:
        os.close(directory)
    return final


def pending_files() -> list[Path]:
    folder = spool_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


def read(path: Path) -> tuple[str, dict[str, Any]]:
    data = json.loads(decrypt_text(path.read_text(encoding="ascii")))
    return str(data["kind"]), dict(data["payload"])


@single_run("gateway.replay_spool", skipped=0)
def replay_spool(limit: int = 5000) -> int:
    """Store spooled requests in the database; returns how many files were replayed.

    Stops at the first database error (still down: the next beat run tries again). A file
    that cannot be read at all is moved aside to ``spool/bad/`` rather than blocking the rest.
    """
    from gateway.calls import InboundCall, record_call
    from gateway.inbound import InboundSms, publish_inbound, record_inbound
    from gateway.status import StatusUpdate, apply_status_update

    replayed = 0
    for path in pending_files()[:limit]:
        try:
            kind, payload = read(path)
        except FileNotFoundError:
            continue  # replayed meanwhile by another run (a spool shared by two hosts)
        except Exception:
            log.exception("unreadable spool file %s moved aside", path.name)
            bad = path.parent / "bad"
            bad.mkdir(exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.replace(bad / path.name)
            continue
        try:
            if kind == KIND_SMS:
                message_id = record_inbound(InboundSms.from_json(payload))
                if message_id is not None:
                    publish_inbound(message_id)
            elif kind == KIND_STATUS:
                apply_status_update(StatusUpdate.from_json(payload))
            elif kind == KIND_CALL:
                record_call(InboundCall.from_json(payload))
            else:
                log.error("unknown spool kind %r in %s", kind, path.name)
        except Exception as exc:
            from sqlalchemy.exc import SQLAlchemyError

            if isinstance(exc, SQLAlchemyError):
                log.warning("spool replay paused, database still failing: %s", type(exc).__name__)
                break
            raise
        path.unlink(missing_ok=True)  # recording is idempotent: a second replay is harmless
        replayed += 1
    return replayed
