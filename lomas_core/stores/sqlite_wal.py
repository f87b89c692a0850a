"""Find damaged frames in an SQLite write-ahead log before SQLite silently drops them.

When SQLite opens a database it replays the WAL up to the first frame whose checksum fails and
ignores the rest, and closing the last connection then checkpoints and deletes the WAL: a
committed charge in a damaged frame is lost without a word. This module reads the WAL file as
documented in SQLite's file-format description (32-byte header; frames of a 24-byte header and a
page; cumulative checksums; salts identifying the current generation) and reports frames of the
current generation that fail their checksum, so that the store can refuse to start instead.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["wal_damage"]

_MAGIC = {0x377F0682: "<", 0x377F0683: ">"}  # checksum word order: little / big endian
_HEADER = 32
_FRAME_HEADER = 24


def _checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def wal_damage(wal: Path) -> str | None:
    """A description of damaged frames of the current generation in ``wal``, or None when the
    file is absent, empty, or every frame of its generation checks out."""
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < _HEADER:
        return None if not data else f"{wal.name} is shorter than its header ({len(data)} bytes)"
    magic, _version, page_size, _ckpt, salt1, salt2, c0, c1 = struct.unpack(">8I", data[:_HEADER])
    order = _MAGIC.get(magic)
    if order is None or page_size < 512 or page_size & (page_size - 1):
        return f"{wal.name} has an invalid header"
    if _checksum(data[:24], order, 0, 0) != (c0, c1):
        return f"{wal.name} has a header that fails its checksum"
    s0, s1 = c0, c1
    frame = _FRAME_HEADER + page_size
    offset, index, bad = _HEADER, 0, []
    broken = False
    while offset + _FRAME_HEADER <= len(data):
        index += 1
        head = data[offset:offset + _FRAME_HEADER]
        _page, _commit, f_salt1, f_salt2, f0, f1 = struct.unpack(">6I", head)
        if (f_salt1, f_salt2) != (salt1, salt2):
            offset += frame
            continue  # a frame of an earlier generation: dead by design
        body = data[offset + _FRAME_HEADER:offset + frame]
        if len(body) < page_size:
            bad.append(f"frame {index} is truncated")
            break
        if not broken:
            s0, s1 = _checksum(head[:8] + body, order, s0, s1)
            if (s0, s1) != (f0, f1):
                broken = True
                bad.append(f"frame {index} fails its checksum")
        else:
            bad.append(f"frame {index} follows a damaged frame")
        offset += frame
    if not bad:
        return None
    shown = "; ".join(bad[:3]) + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else "")
    return f"{wal.name}: {shown}"
