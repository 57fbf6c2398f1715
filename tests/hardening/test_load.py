"""Many members in many rooms: zero lost, none duplicated, one order per room.

A modest version of scripts/load_test.py (which runs 200 clients in 20 rooms for 30 s):
60 scripted members in 6 rooms chat for 10 s; afterwards every member's arrivals are
compared, id by id, with the room's history as the pages show it (GET /rooms/<code> and
"Load earlier messages").
"""

from __future__ import annotations

import pytest

from tests.kit import NO_LIMITS, LogWatch, MakeServer, run_load

pytestmark = pytest.mark.e2e


async def test_sixty_clients_in_six_rooms_lose_and_double_nothing(
    make_live_server: MakeServer,
) -> None:
    server = make_live_server(env=NO_LIMITS)
    watch = LogWatch(server)
    report = await run_load(server, clients=60, rooms=6, seconds=10, rate=0.5,
                            pid=server.process.pid)
    print("\n" + report.summary())
    assert report.sent > 200, report.summary()
    assert report.stored == report.sent, report.summary()
    assert report.not_stored == 0 and report.duplicated == 0, report.summary()
    assert report.lost == 0, report.summary()
    assert report.deliveries == report.expected_deliveries, report.summary()
    assert report.out_of_order == 0, report.summary()
    assert report.reconnects == 0 and not report.problems, report.summary()
    watch.assert_clean()
