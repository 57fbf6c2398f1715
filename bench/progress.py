"""One live progress line on stderr, rewritten in place with \\r."""

from __future__ import annotations

import os
import shutil
import sys
import time

# the runner sets BENCH_STARTED so that every process counts from the same start
_started = float(os.environ.setdefault("BENCH_STARTED", str(time.time())))


def status(text: str, keep: bool = False) -> None:
    """Show `text` on the progress line; `keep` leaves it above the next one."""
    width = shutil.get_terminal_size((120, 20)).columns - 1
    line = f"[{time.time() - _started:6.1f}s] {text}"[:width]
    sys.stderr.write("\r\x1b[2K" + line + ("\n" if keep else ""))
    sys.stderr.flush()
