"""A small day of email candidates over the tests' small warehouse, and the delivery objects around it.
Used in-process and by the child process the kill test starts."""
from __future__ import annotations

import sys
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from music_feedback.delivery.email.maildir import MaildirSender
from music_feedback.delivery.email.plan import plan, send_window
from music_feedback.delivery.email.render import Renderer
from music_feedback.delivery.email.send import EmailDelivery, SendOptions
from music_feedback.delivery.links import LinkSigner
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore
from music_feedback.programs.loader import load_programs
from music_feedback.store import SQLiteCandidateStore
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback_tests.service_support import LINKS, candidate, frame

DAY = date(2026, 11, 23)
PROGRAM = load_programs()[0]


def eligible_listeners(warehouse: Path, n: int, market: str = "US") -> list[int]:
    """Listeners that contact policy lets through (not opted out, trusted, no request this week)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return [r[0] for r in con.execute(
            "SELECT listener_id FROM listeners WHERE NOT opted_out AND bot_score < 0.5 AND is_authentic "
            "AND marketplace = ? AND listener_id NOT IN (SELECT listener_id FROM feedback_requests) "
            "ORDER BY listener_id LIMIT ?", [market, n]).fetchall()]


def seed_day(home: Path, warehouse: Path, n: int, market: str = "US") -> list[int]:
    listeners = eligible_listeners(warehouse, n, market)
    expires = int(datetime(2026, 12, 8, tzinfo=timezone.utc).timestamp())
    rows = [candidate(lid, 500 + i % 7, round(0.99 - i / (10 * n), 4), marketplace=market, expires_at=expires)
            for i, lid in enumerate(listeners)]
    rows += [candidate(lid, 500, 0.9, channel="voice-assistant", marketplace=market, expires_at=expires)
             for lid in listeners[:3]]
    stores(home)[0].put_batch(PROGRAM.program_id, DAY.isoformat(), frame(rows))
    return listeners


def stores(home: Path):
    return (SQLiteCandidateStore(path=str(home / "candidates.sqlite")),
            SQLiteFeedbackStore(path=str(home / "feedback.sqlite")))


def delivery(home: Path, warehouse: Path, sender=None, clock_offset: float = 60.0, market: str = "US",
             links: LinkSigner = LINKS, **options) -> EmailDelivery:
    candidates, feedback = stores(home)
    send_at, _ = send_window(PROGRAM, market, DAY)
    plan(PROGRAM, candidates, feedback, DAY, datetime(2026, 11, 24, tzinfo=timezone.utc))
    renderer = Renderer(PROGRAM, links, "https://feedback.test", "listener-{listener_id}@listeners.test")
    return EmailDelivery(PROGRAM, candidates, feedback, sender or MaildirSender(path=str(home / "outbox")), renderer,
                         DuckDBWarehouse(path=str(warehouse)),
                         SendOptions(clock=lambda: send_at + clock_offset, retry_delay_s=0.05, **options))


if __name__ == "__main__":  # the kill test's child: send the day slowly enough to be killed mid-way
    home, warehouse = Path(sys.argv[1]), Path(sys.argv[2])
    delivery(home, warehouse, workers=1).run(DAY, "US")
