"""One contact policy across channels, batches and time, driven over real HTTP on a simulated clock: the
voice prompt sees email's contacts and answers of other batches, the warehouse's opt-out, bot scores and
earlier requests; unsubscribed listeners' candidates are not served; held-out listeners' answers are
refused and nothing is stored."""
from __future__ import annotations

from datetime import datetime, timezone

import httpx
import polars as pl
import pytest

from music_feedback.clock import Clock
from music_feedback.delivery.holdout import is_held_out
from music_feedback.feedback.port import LEDGER_SCHEMA, Submission
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore
from music_feedback.policy.gate import ContactGate
from music_feedback.programs.loader import load_programs
from music_feedback_tests.service_support import (PROGRAM, auth, candidate, frame, make_app, policy_warehouse,
                                                  sqlite_store)

pytestmark = pytest.mark.integration

DAY, OLD_DAY = "2026-11-23", "2026-11-20"
NOW = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc).timestamp()  # listener time on D+1
HOUR, DAYS = 3600.0, 86_400.0
VOICE = "voice-assistant"
EMAILED_TWICE, ANSWERED, OPTED_OUT, BOT, ASKED_BEFORE, FREE, EAGER = [
    lid for lid in range(21, 1000) if not is_held_out(load_programs()[0], lid)][:7]
HELD = next(lid for lid in range(21, 1000) if is_held_out(load_programs()[0], lid))


def _ledger(day: str, rows: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame([{"batch_date": day, "listener_id": lid, "track_id": tid, "channel": "email", "state": "pending",
                          "campaign": "US-rock", "marketplace": "US", "genre": "rock", "track_name": f"Track {tid}",
                          "artist_id": 1, "score": 0.9, "send_at": 0.0, "send_before": 1e12}
                         for lid, tid in rows], schema=LEDGER_SCHEMA)


def _send(feedback, day: str, pairs: list[tuple[int, int]], at: float) -> None:
    feedback.plan(PROGRAM, _ledger(day, pairs))
    feedback.claim(PROGRAM, day, "email", pairs, at)
    feedback.settle(PROGRAM, day, "email", [(p, "sent", "", f"<{p}@x>") for p in pairs], at)


@pytest.fixture
def world(tmp_path, serve):
    store, feedback = sqlite_store(tmp_path), SQLiteFeedbackStore(path=str(tmp_path / "feedback.sqlite"))
    listeners = [EMAILED_TWICE, ANSWERED, OPTED_OUT, BOT, ASKED_BEFORE, FREE, HELD]
    store.put_batch(PROGRAM, OLD_DAY, frame([candidate(lid, 500, 0.9) for lid in listeners]))
    store.put_batch(PROGRAM, DAY, frame([candidate(lid, t, 0.8, channel=VOICE) for lid in listeners
                                         for t in (500, 501)]))
    # Email contacts a day and two days before, stamped on the simulated clock; an answer on the old batch.
    _send(feedback, OLD_DAY, [(EMAILED_TWICE, 500)], NOW - 2 * DAYS)
    _send(feedback, DAY, [(EMAILED_TWICE, 502)], NOW - 6 * HOUR)
    _send(feedback, OLD_DAY, [(ANSWERED, 500)], NOW - 3 * DAYS)
    warehouse = policy_warehouse(tmp_path, opted_out=[OPTED_OUT], bots=[BOT],
                                 requests=[(ASKED_BEFORE, NOW - 1 * DAYS), (ASKED_BEFORE, NOW - 5 * DAYS),
                                           (FREE, NOW - 8 * DAYS)])
    app = make_app(store, feedback=feedback, warehouse=warehouse, clock=Clock.at(NOW))
    with httpx.Client(base_url=serve(app), timeout=10) as client:
        yield client, store, feedback, warehouse


def prompt(client, listener: int, track: int) -> dict:
    r = client.get(f"/v1/programs/{PROGRAM}/listeners/{listener}/voice-prompt", params={"track": track},
                   headers=auth())
    assert r.status_code == 200, r.text
    return r.json()


def answer(client, listener: int, track: int, sid: str) -> httpx.Response:
    return client.post(f"/v1/programs/{PROGRAM}/listeners/{listener}/voice-answers",
                       json={"trackId": track, "answer": "yes", "submissionId": sid}, headers=auth())


def test_the_voice_prompt_counts_email_and_the_warehouse_against_the_cap(world):
    client, _, feedback, _ = world
    assert prompt(client, EMAILED_TWICE, 500)["reason"].startswith("over_weekly_cap")
    assert prompt(client, ASKED_BEFORE, 500)["reason"].startswith("over_weekly_cap")
    # FREE's warehouse request is eight days old: outside every seven-day window with now.
    first, second = prompt(client, FREE, 500), prompt(client, FREE, 501)
    assert first["ask"] and second["ask"]
    assert prompt(client, FREE, 500)["ask"]  # the same request prompted again is not a new contact
    ledger = feedback.ledger_frame(PROGRAM, DAY).filter(pl.col("listener_id") == FREE)
    assert ledger.height == 2 and set(ledger["state"]) == {"sent"}
    assert feedback.contacts_of(PROGRAM, FREE, NOW - 60, NOW + 60) == 2  # stamped on the simulated clock


def test_prompts_at_once_never_pass_the_cap(world):
    """Eight prompts about eight tracks of one listener, sent together: the cap's check and the contact's
    write are one atomic step, so exactly the cap's two get asked."""
    from concurrent.futures import ThreadPoolExecutor
    client, store, feedback, _ = world
    store.put_batch(PROGRAM, DAY, frame([candidate(EAGER, t, 0.8, channel=VOICE) for t in range(600, 608)]))
    with ThreadPoolExecutor(8) as pool:
        asked = list(pool.map(lambda t: prompt(client, EAGER, t), range(600, 608)))
    assert sum(a["ask"] for a in asked) == 2
    assert {a["reason"].split(":")[0] for a in asked if not a["ask"]} == {"over_weekly_cap"}
    assert feedback.contacts_of(PROGRAM, EAGER, NOW - 60, NOW + 60) == 2


def test_a_pair_answered_in_another_batch_is_not_asked_again(world):
    client, _, feedback, _ = world
    feedback.submit(Submission(PROGRAM, ANSWERED, 500, 1, "email", OLD_DAY, "answer-0001", NOW - 2 * DAYS))
    assert prompt(client, ANSWERED, 500)["reason"].startswith("already_answered")
    assert prompt(client, ANSWERED, 501)["ask"] is True


def test_the_warehouse_opt_out_and_bot_score_are_read_at_prompt_time(world):
    client = world[0]
    assert prompt(client, OPTED_OUT, 500)["reason"].startswith("opted_out")
    assert prompt(client, BOT, 500)["reason"].startswith("bot_activity")


def test_a_held_out_listener_is_not_asked_and_their_answer_is_refused(world):
    client, _, feedback, _ = world
    assert prompt(client, HELD, 500)["reason"].startswith("held_out")
    r = answer(client, HELD, 500, "held-out-0001")
    assert r.status_code in (403, 409) and feedback.feedback(PROGRAM, HELD, 500) is None
    assert feedback.answers(PROGRAM, float("inf")).filter(pl.col("listener_id") == HELD).is_empty()


def test_an_unsubscribed_listener_is_served_nowhere_at_once(world):
    client, _, feedback, _ = world
    voice = f"/v1/programs/{PROGRAM}/channels/{VOICE}/candidates"
    mine = f"/v1/programs/{PROGRAM}/listeners/{FREE}/candidates"
    before = client.get(voice, headers=auth()).json()["items"]
    assert FREE in {i["listener_id"] for i in before} and client.get(mine, headers=auth()).json()["count"] == 3
    feedback.opt_out(FREE, "unsubscribe link", NOW)
    after = client.get(voice, headers=auth()).json()["items"]
    assert FREE not in {i["listener_id"] for i in after} and len(after) == len(before) - 2
    assert client.get(mine, headers=auth()).json() == {"program": PROGRAM, "listener": FREE, "count": 0, "items": []}
    assert prompt(client, FREE, 500)["reason"].startswith("unsubscribed")


def test_the_gate_in_bulk_gives_what_it_gives_pair_by_pair(world):
    _, _, feedback, warehouse = world
    gate = ContactGate(load_programs()[0], warehouse, feedback)
    pairs = pl.DataFrame({"listener_id": [EMAILED_TWICE, OPTED_OUT, BOT, ASKED_BEFORE, FREE, FREE, FREE, HELD],
                          "track_id": [501, 500, 500, 500, 500, 501, 503, 500]})
    # A pair decided with the pairs before it in the same run (they count against the cap) ...
    one_by_one = [gate.check(pairs.head(i + 1), "email", NOW)["reason"][-1] for i in range(pairs.height)]
    bulk = gate.check(pairs, "email", NOW)
    assert bulk["reason"].to_list() == one_by_one == [
        "over_weekly_cap", "opted_out", "bot_activity", "over_weekly_cap", None, None, "over_weekly_cap", "held_out"]
    # Read in bulk (many listeners) and per listener (few), the sources agree.
    many = pl.concat([pairs, pl.DataFrame({"listener_id": list(range(100, 400)), "track_id": [9] * 300})])
    assert gate.check(many, "email", NOW)["reason"].head(pairs.height).to_list() == one_by_one
