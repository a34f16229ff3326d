"""The store audit on hand-made rows: each rule finds the one violation planted for it, and nothing else;
clean rows give zero everywhere. Real embedded stores (SQLite feedback store, DuckDB warehouse, a Maildir)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from itertools import count

import duckdb
import pytest

from music_feedback.delivery.email.maildir import file_name
from music_feedback.delivery.email.render import message_id
from music_feedback.delivery.holdout import is_held_out
from music_feedback.feedback.port import Submission
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore
from music_feedback.programs.loader import load_programs
from music_feedback_tools.simulate.audit import RULES, audit
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse

pytestmark = pytest.mark.unit

PROGRAM = load_programs()[0]
PID = PROGRAM.program_id
T0 = datetime(2026, 11, 20, 10, tzinfo=timezone.utc).timestamp()
H, D = 3600.0, 86_400.0
DAYS = [date(2026, 11, 19) + timedelta(days=i) for i in range(9)]
SESSIONS = [(T0 - D, T0 + 10 * D)]
DOMAIN = PROGRAM.channel("email").typed_config().from_address.rsplit("@", 1)[-1].rstrip(">").strip()
_ids = count(1000)


def listener(held: bool = False) -> int:
    """A fresh listener id in (or out of) the holdout."""
    while True:
        lid = next(_ids)
        if is_held_out(PROGRAM, lid) == held:
            return lid


class World:
    def __init__(self, tmp_path):
        self.feedback = SQLiteFeedbackStore(path=str(tmp_path / "feedback.sqlite"))
        self.outbox = tmp_path / "outbox"
        (self.outbox / "new").mkdir(parents=True)
        (self.outbox / "cur").mkdir()
        self.wh_path = tmp_path / "warehouse.duckdb"
        self.opted_out: list[int] = []
        self.requests: list[tuple[int, float]] = []
        self.emails: list[tuple[str, int, int]] = []

    def contact(self, lid: int, tid: int, at: float, channel: str = "email", batch: str = "2026-11-19",
                deliver: bool = True) -> None:
        row = {"listener_id": lid, "track_id": tid, "marketplace": "US"}
        assert self.feedback.record_contact(PID, batch, channel, row, "sent", at) == "sent"
        if channel == "email":
            self.emails.append((batch, lid, tid))
            if deliver:
                self.message(batch, lid, tid)

    def message(self, batch: str, lid: int, tid: int, folder: str = "new", suffix: str = "") -> None:
        name = file_name(message_id(PID, batch, lid, tid, "email", DOMAIN))
        (self.outbox / folder / (name + suffix)).write_bytes(b"Subject: test\r\n\r\nhello\r\n")

    def answer(self, lid: int, tid: int, at: float, channel: str = "email", batch: str = "2026-11-19") -> None:
        self.feedback.submit(Submission(PID, lid, tid, 1, channel, batch, f"sub-{lid}-{tid}-x", at))

    def audit(self) -> dict:
        with duckdb.connect(str(self.wh_path)) as con:
            con.execute("CREATE TABLE listeners (listener_id BIGINT, opted_out BOOLEAN)")
            con.execute("CREATE TABLE feedback_requests (program_id VARCHAR, listener_id BIGINT, track_id BIGINT, "
                        "channel VARCHAR, requested_at TIMESTAMP)")
            for lid in self.opted_out:
                con.execute("INSERT INTO listeners VALUES (?, true)", [lid])
            for lid, at in self.requests:  # naive UTC, as the warehouse keeps its timestamps
                con.execute("INSERT INTO feedback_requests VALUES (?, ?, 1, 'email', ?)",
                            [PID, lid, datetime.fromtimestamp(at, timezone.utc).replace(tzinfo=None)])
        return audit(PROGRAM, DAYS, feedback=self.feedback, warehouse=DuckDBWarehouse(path=str(self.wh_path)),
                     outbox=self.outbox, sessions=SESSIONS)


def test_clean_rows_break_no_rule(tmp_path):
    w = World(tmp_path)
    a, b = listener(), listener()
    w.contact(a, 1, T0)
    w.contact(a, 2, T0 + 3 * D, channel="voice-assistant", batch="2026-11-21")
    w.contact(a, 3, T0 + 7 * D)  # exactly a week after the first: that one has left the window
    w.requests.append((b, T0 - 8 * D))  # the warehouse's request from before the week
    w.contact(b, 1, T0)
    w.contact(b, 2, T0 + H)
    w.requests.append((b, T0 + 2 * H))  # after our last contact of the week: not ours to answer for
    w.answer(b, 1, T0 + 2 * H)
    w.feedback.record_contact(PID, "2026-11-19", "email", {"listener_id": listener(held=True), "track_id": 5},
                              "held_out", T0)
    c = listener()
    w.contact(c, 1, T0)
    w.feedback.opt_out(c, "unsubscribe link", T0 + H)
    report = w.audit()
    assert report["policy_violations"] == 0, report["rules"]
    assert report["policy_contacts_examined"] == 6 and report["policy_days"] == 9
    assert all(report["rules"][r].get("checked", True) for r in RULES)
    assert report["rules"]["messages"]["sent_rows"] == 5 and report["rules"]["messages"]["messages"] == 5


def test_each_rule_finds_its_violation(tmp_path):
    w = World(tmp_path)
    # over the cap: three contacts in a week across channels; two of ours after a warehouse request
    over, over_wh = listener(), listener()
    w.contact(over, 1, T0)
    w.contact(over, 2, T0 + D, channel="voice-assistant", batch="2026-11-20")
    w.contact(over, 3, T0 + 6 * D, batch="2026-11-25")
    w.requests.append((over_wh, T0 - H))
    w.contact(over_wh, 1, T0)
    w.contact(over_wh, 2, T0 + D, batch="2026-11-20")
    # after opt-out: asked after the unsubscribe; asked though the warehouse says opted out
    unsub, opted = listener(), listener()
    w.contact(unsub, 1, T0)
    w.feedback.opt_out(unsub, "unsubscribe link", T0 + H)
    w.contact(unsub, 2, T0 + 2 * H, channel="voice-assistant")
    w.opted_out.append(opted)
    w.contact(opted, 1, T0)
    # asked again by voice, on a later batch, after answering by email
    again = listener()
    w.contact(again, 7, T0)
    w.answer(again, 7, T0 + H)
    w.contact(again, 7, T0 + D, channel="voice-assistant", batch="2026-11-20")
    # the holdout: asked by voice, and an answer stored
    held = listener(held=True)
    w.contact(held, 1, T0, channel="voice-assistant")
    w.answer(held, 2, T0 + H, channel="voice-assistant")
    # messages: one sent row lost, one delivered twice, one message with no sent row
    lost, doubled = listener(), listener()
    w.contact(lost, 1, T0, deliver=False)
    w.contact(doubled, 1, T0)
    w.message("2026-11-19", doubled, 1, folder="cur", suffix=":2,S")
    w.message("2026-11-19", listener(), 9)
    # a stamp from another clock: weeks after the simulated days
    late = listener()
    w.contact(late, 1, T0 + 30 * D, channel="voice-assistant", batch="2026-11-27")

    report = w.audit()
    rules = report["rules"]
    found = {r: rules[r]["violations"] for r in RULES}
    assert found == {"over_weekly_cap": 2, "after_opt_out": 2, "asked_after_answer": 1, "held_out": 2,
                     "messages": 3, "off_clock": 1}, rules
    assert report["policy_violations"] == 11
    assert {e["listener_id"] for e in rules["over_weekly_cap"]["examples"]} == {over, over_wh}
    assert rules["over_weekly_cap"]["listeners_over_with_mixed_channels"] == 1
    assert {e["listener_id"] for e in rules["after_opt_out"]["examples"]} == {unsub, opted}
    assert rules["asked_after_answer"]["examples"][0]["listener_id"] == again
    assert rules["asked_after_answer"]["examples"][0]["channel"] == "voice-assistant"
    assert {e["listener_id"] for e in rules["held_out"]["examples"]} == {held}
    assert [rules["messages"][k] for k in ("lost", "duplicated", "without_sent_row")] == [1, 1, 1]
    assert rules["off_clock"]["examples"][0]["listener_id"] == late


def test_without_a_local_outbox_the_messages_are_not_checked(tmp_path):
    w = World(tmp_path)
    w.contact(listener(), 1, T0, deliver=False)
    (w.outbox / "new").rmdir()
    report = w.audit()
    assert report["rules"]["messages"]["checked"] is False and report["rules"]["messages"]["violations"] == 0


def test_a_missing_store_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no feedback store"):
        audit(PROGRAM, feedback=SQLiteFeedbackStore(path=str(tmp_path / "nowhere.sqlite")),
              warehouse=DuckDBWarehouse(path=str(tmp_path / "w.duckdb")))
