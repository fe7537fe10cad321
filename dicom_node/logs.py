"""Structured, privacy-safe logging: one JSON event per line, UIDs hashed.

DICOM UIDs can be traced back to a patient by anyone with PACS access, so logs carry a short
hash instead: stable across runs (to correlate events of one series) but not
reversible. Patient names, IDs and dates are never passed to these helpers; an audit event
that must say which patient carries `patient_log_ref`, a digest keyed by this installation's
secret (a plain hash of an 8-digit ID is reversed by hashing all 10^8 IDs in minutes).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sys
import traceback
import warnings
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

_EVENT_FIELDS = "event_fields"
_UID_PATTERN = re.compile(r"(?<![\w.])[0-9]+(?:\.[0-9]+){4,}(?!\.?[0-9])")
"""Five or more dotted numbers: a DICOM UID (1.2.840....), never an IPv4 address or version."""


def redact_uids(text: str) -> str:
    """Every UID in free text replaced by its hash: third-party messages (pynetdicom's
    association logs, highdicom's warnings) quote SOP Instance UIDs and file names."""
    return _UID_PATTERN.sub(lambda m: f"uid:{uid_hash(m.group(0))}", text)


def uid_hash(uid: str) -> str:
    """Short stable digest of a DICOM UID for logs and spool paths (16 hex digits, 64 bits)."""
    return hashlib.sha256(uid.strip().encode("ascii", "replace")).hexdigest()[:16]


LOG_KEY_FILE = "log-key"
"""In the data folder: the secret behind `patient_log_ref` (created on first use, mode 0600;
deleting it makes later events' patient references unlinkable to earlier ones)."""


def patient_log_ref(patient_id: str, issuer: str, data_dir: Path) -> str:
    """A patient's identity in audit events: HMAC-SHA256 under the installation's key, 16 hex
    digits. Stable for one data folder (events of one patient correlate), and recomputable
    only with the key file, which stays with the data it protects."""
    message = f"{issuer.strip()}|{patient_id.strip()}".encode()
    return hmac.new(_log_key(Path(data_dir).resolve()), message, hashlib.sha256).hexdigest()[:16]


@lru_cache(maxsize=4)
def _log_key(data_dir: Path) -> bytes:
    """The key in `data_dir`, made on first use. It is written whole to a temporary file and
    then hard-linked into place, so a concurrent process never reads a half-written key and
    the first key made wins."""
    path = data_dir / LOG_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = data_dir / f".{LOG_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process was first: use its key
        finally:
            temporary.unlink()
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def log_event(
    logger: logging.Logger,
    event: str,
    level: int = logging.INFO,
    exc_info: bool = False,
    **fields: Any,
) -> None:
    """Log one named event with flat key/value fields (keep values free of patient data)."""
    logger.log(level, event, exc_info=exc_info, extra={_EVENT_FIELDS: fields})


class JsonLineFormatter(logging.Formatter):
    """Render a record as one JSON object so log shippers need no parsing rules; the one
    filter every line passes, ours and third-party loggers' alike, so UIDs are hashed here."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact_uids(record.getMessage()),
        }
        fields = getattr(record, _EVENT_FIELDS, {})
        line.update({k: redact_uids(v) if isinstance(v, str) else v for k, v in fields.items()})
        if record.exc_info and record.exc_info[1] is not None:
            line.update(_describe(record.exc_info[1]))
        return json.dumps(line, default=str, separators=(",", ":"))


def _describe(exc: BaseException) -> dict[str, Any]:
    """Exception class, errno and innermost source line, without the message: messages of
    pydicom and OS errors quote element values and spool paths (which contain UIDs)."""
    described: dict[str, Any] = {"error": type(exc).__name__}
    if isinstance(exc, OSError) and exc.errno is not None:
        described["errno"] = errno.errorcode.get(exc.errno, exc.errno)
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        described["where"] = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}"
    return described


def configure_logging(level: int | str = logging.INFO) -> None:
    """Route the node's loggers (and pynetdicom's warnings) to stderr as JSON lines.

    pynetdicom logs dataset dumps at INFO/DEBUG, so it is capped at WARNING; pydicom's own
    messages quote invalid element values (which may be patient data), so it is silenced and
    the node's events report the outcome instead. highdicom narrates every object it builds
    (about 16 INFO lines per job) and alembic every migration check: capped at WARNING too, so
    an operator's log holds the node's own events.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for chatty in ("pynetdicom", "highdicom", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
