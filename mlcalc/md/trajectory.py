"""Cut append-only outputs back to a checkpoint, so that a resumed run continues them without
duplicated or partial frames.

OpenMM's reporters append frames and rows as a run goes; a run killed after its last checkpoint has
written frames (perhaps half of one) that the resumed run will write again. These functions drop
everything after the checkpoint's step before the reporters reopen the files.
"""

from __future__ import annotations

import csv
import os
import struct
from pathlib import Path

from mlcalc.files import write_atomic


def truncate_dcd(path: Path, frames: int) -> None:
    """Keep the first ``frames`` frames of an OpenMM DCD file (fixed-size frames after the header)."""
    with open(path, "r+b") as stream:
        header = stream.read(100)
        if len(header) < 100 or header[4:8] != b"CORD":
            raise ValueError(f"{path} is not a DCD file; {_restart(path)}")
        first_step, interval = struct.unpack("<2i", header[12:20])
        has_cell = struct.unpack("<i", header[48:52])[0] != 0
        (comment_bytes,) = struct.unpack("<i", header[92:96])
        stream.seek(104 + comment_bytes)
        (atoms,) = struct.unpack("<i", stream.read(4))
        header_bytes = 112 + comment_bytes
        frame_bytes = (56 if has_cell else 0) + 3 * (8 + 4 * atoms)
        available = (os.path.getsize(path) - header_bytes) // frame_bytes
        if frames > available:
            raise ValueError(
                f"{path} holds {available} complete frames, fewer than the checkpoint's {frames}; {_restart(path)}"
            )
        stream.truncate(header_bytes + frames * frame_bytes)
        # The header's frame count and last step, as OpenMM's DCDFile keeps them.
        stream.seek(8)
        stream.write(struct.pack("<i", frames))
        stream.seek(20)
        stream.write(struct.pack("<i", first_step + (frames - 1) * interval))


def truncate_xtc(path: Path, frames: int) -> None:
    """Keep the first ``frames`` frames of an XTC file (frame offsets from MDAnalysis's reader)."""
    from MDAnalysis.lib.formats.libmdaxdr import XTCFile

    with XTCFile(str(path)) as xtc:
        offsets = list(xtc.offsets)
    if frames > len(offsets):
        raise ValueError(f"{path} holds {len(offsets)} frames, fewer than the checkpoint's {frames}; {_restart(path)}")
    if frames < len(offsets):
        os.truncate(path, offsets[frames])


def truncate_trajectory(path: Path, frames: int) -> None:
    """Keep the first ``frames`` frames of a DCD or XTC file; with none to keep, delete it (a run killed
    before its first frame leaves an empty file or half a header, which the reporter then writes anew)."""
    if not path.exists():
        if frames:
            raise ValueError(
                f"the trajectory {path} is missing but the checkpoint counts {frames} frames: put it back, or "
                f"{_restart(path)}"
            )
        return
    if frames == 0:
        path.unlink()
        return
    (truncate_xtc if path.suffix == ".xtc" else truncate_dcd)(path, frames)


def truncate_state_data(path: Path, last_step: int) -> int:
    """Drop the rows of a ``StateDataReporter`` CSV (``step=True``) written after ``last_step``; returns
    how many rows remain."""
    if not path.exists():
        return 0
    with open(path, newline="") as stream:
        rows = list(csv.reader(stream))
    header = rows[:1]
    # Keep complete rows (as many columns as the header) up to last_step; the step is the first column.
    body = [row for row in rows[1:] if header and len(row) == len(header[0]) and _step(row) <= last_step]
    if not body:
        # Nothing to keep (a run killed before its first row, with an empty file or half a header): start the
        # file afresh, so that the reporter writes its header again instead of appending rows without one.
        path.unlink()
        return 0

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as stream:
            csv.writer(stream).writerows(header + body)

    write_atomic(path, write)
    return len(body)


def _step(row: list[str]) -> float:
    try:
        return int(row[0])
    except ValueError:
        return float("inf")


def _restart(path: Path) -> str:
    """The way out of a damaged trajectory: run again from the first step."""
    return f"start the run again from its first step with mlcalc md --restart {path.parent}"
