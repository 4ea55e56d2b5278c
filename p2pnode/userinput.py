"""Files and values a user hands us (scenarios, latency matrices, graphs, node configs): read safely, quoted briefly.

Standard library only: the emulator's topologies read latency matrices under Mininet's own interpreter.

* `read_text` opens a path the way every input file is opened: only a regular file (a FIFO would block for
  ever, a device such as the kernel's random source never ends), at most `limit` bytes, decoded as UTF-8 with
  the line of the first bad byte. Its errors are `InputFileError` with a short reason, no traceback.
* `quote` is how a value the user wrote appears in a message: repr'd, on one line, at most a few dozen
  characters (a 1 MB value must not become a 1 MB error line); `one_line` makes any message a single line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

QUOTE_LIMIT = 60  # characters of a user's value shown in a message
LINE_LIMIT = 300  # characters of a whole message line


class InputFileError(ValueError):
    """A file that cannot be read as the input asked for; str() is a short reason ("no such file"); `line` is
    the 1-based line of a decoding error, else None."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def size_text(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def read_bytes(path: str | Path, limit: int) -> bytes:
    """The contents of the regular file `path`, at most `limit` bytes. Raises InputFileError."""
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer (it is refused just below)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except ValueError:
        raise InputFileError("the path contains a NUL byte") from None
    except FileNotFoundError:
        raise InputFileError("no such file") from None
    except OSError as exc:
        raise InputFileError(f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputFileError("is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
            raise InputFileError(f"is {kind}; expected a regular file")
        if info.st_size > limit:
            raise InputFileError(f"is {size_text(info.st_size)}; at most {size_text(limit)} is read")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # the file grew while we read it
            raise InputFileError(f"is over {size_text(limit)}; at most {size_text(limit)} is read")
        return b"".join(chunks)
    except OSError as exc:
        raise InputFileError(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def decode(data: bytes) -> str:
    """UTF-8 text (a leading byte-order mark dropped); InputFileError names the line of a bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFileError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})", line) from None


def read_text(path: str | Path, limit: int) -> str:
    """A regular file's UTF-8 text, at most `limit` bytes. Raises InputFileError."""
    return decode(read_bytes(path, limit))


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """repr(value) on one line, shortened to about `limit` characters."""
    if isinstance(value, str | bytes) and len(value) > 4 * limit:
        value = value[: 4 * limit]  # repr of a huge value is not built only to be cut
    if isinstance(value, int) and value.bit_length() > 3 * limit:  # repr would be long, or refused (> 4300 digits)
        return f"an integer of about {round(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int = LINE_LIMIT) -> str:
    """`text` with every run of whitespace or control characters as one space, shortened to `limit`."""
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."
