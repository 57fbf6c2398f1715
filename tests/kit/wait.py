"""The one way the kit and the tests wait: poll a condition, fail after a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(check: Callable[[], bool], within: float = 10.0, what: str = "") -> None:
    """Poll `check` every 20 ms; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or check}")
        await asyncio.sleep(0.02)
