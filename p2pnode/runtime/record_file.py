"""The file where a node keeps the DHT records it stores across restarts (``dht.storage_path``).

One JSON line per record: the ``PUT_VALUE`` message that carries it (hex of its protobuf) and its wall-clock
expiry, so a record keeps only the lifetime it had left when the node stopped. Written atomically (a
temporary file renamed over the old one); an unreadable line is skipped with a warning naming its line.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from p2pnode.kad import codec as kad_codec
from p2pnode.kad.messages import PutValue
from p2pnode.kad.records import RecordStore
from p2pnode.userinput import InputFileError, read_text

MAX_RECORD_FILE_BYTES = 1 << 30  # a node stores at most its records' worth; a gigabyte is far beyond that

log = logging.getLogger("p2pnode.node")


class RecordFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def save(self, records: RecordStore, now: float) -> None:
        """Write the unexpired ``records`` (``now`` on the node's clock) with their wall-clock expiry."""
        wall = time.time()
        lines = [json.dumps({"record": kad_codec.encode(PutValue(stored.record)).hex(),
                             "expires_at": wall + stored.expires - now})
                 for stored in records.items() if stored.expires > now]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        tmp.replace(self.path)
        log.info("kept %d DHT records in %s", len(lines), self.path)

    def load(self, records: RecordStore, now: float) -> None:
        """Restore the records kept in the file into ``records`` (those that are still valid)."""
        if not self.path.exists():
            return
        wall = time.time()
        restored = 0
        try:
            text = read_text(self.path, MAX_RECORD_FILE_BYTES)
        except InputFileError as exc:
            raise InputFileError(f"dht.storage_path {self.path}: {exc.reason}", exc.line) from None
        for number, line in enumerate(text.splitlines(), 1):
            try:
                entry = json.loads(line)
                message = kad_codec.decode(bytes.fromhex(entry["record"]), response=False)
                expires = now + float(entry["expires_at"]) - wall
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s:%d: skipped an unreadable record: %s", self.path, number, exc)
                continue
            if isinstance(message, PutValue) and records.restore(message.record, expires, now):
                restored += 1
        log.info("restored %d DHT records from %s", restored, self.path)
