"""Two consecutive days through Dagster: what day 1 sent and what listeners answered is what day 2's
batch sees (the weekly cap counts day 1's email, answered pairs and unsubscribed listeners drop out)."""
from __future__ import annotations

import time
from datetime import timedelta

import polars as pl
import pytest
from dagster import instance_for_test

from music_feedback import runner, settings
from music_feedback.definitions import build_definitions
from music_feedback.delivery.runner import run_email
from music_feedback.feedback import Submission
from music_feedback.policy.contact import batch_time
from music_feedback.programs.loader import load_programs
from music_feedback.resources import candidate_store, feedback_store
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph

DAY1, DAY2 = BATCH_DAY - timedelta(days=1), BATCH_DAY


def _decisions(program, day) -> pl.DataFrame:
    return pl.read_parquet(settings.io_root() / program.slug / "candidate_decisions" / f"{day}.parquet")


def _stored_email(program, day) -> pl.DataFrame:
    rows = candidate_store().for_channel(program.program_id, "email", limit=10**6)
    return pl.DataFrame([r for r in rows if r["batch_date"] == day.isoformat()]).select("listener_id", "track_id")


def test_day_two_sees_day_one(data_home):
    program = load_programs()[0]
    defs = build_definitions()
    with instance_for_test() as instance:
        runner.ensure_models(defs, program, instance, day=DAY2)
        assert runner.run_batch(defs, program, DAY1, instance).success
        assert all(r["success"] for r in run_email(defs, program, DAY1, instance))
        feedback = feedback_store()
        sent = pl.DataFrame(feedback.contacts(program.program_id, 0, time.time() + 86_400))
        assert sent.height > 0

        assert runner.run_batch(defs, program, DAY2, instance).success
        before = _stored_email(program, DAY2)
        # a pair asked on day 1 and a candidate again on day 2: the listener answers it now
        day1 = pl.DataFrame(candidate_store().for_channel(program.program_id, "email", limit=10**6))
        day1 = day1.filter((pl.col("batch_date") == DAY1.isoformat()) & (pl.col("status") == "sent"))
        again = day1.join(before, on=["listener_id", "track_id"]).select("listener_id", "track_id").head(1)
        assert again.height == 1, "the small warehouse repeats some listener+track pairs on consecutive days"
        unsubscribed = before.join(again, on="listener_id", how="anti")["listener_id"][0]
        lid, tid = again.row(0)
        # On the simulated clock: late on day 2, after day 1's email went out and before day 2's batch decides.
        late = batch_time(DAY2) - 3600
        feedback.submit(Submission(program.program_id, lid, tid, 1, "email", DAY1.isoformat(), "answer-0001", late))
        feedback.opt_out(unsubscribed, "unsubscribe link", late)

        assert runner.run_batch(defs, program, DAY2, instance).success  # the day again, now knowing more
        after, decisions = _stored_email(program, DAY2), _decisions(program, DAY2)

    # the weekly cap counted day 1's sends: nobody is over it with day 2's candidates added
    week = (sent.rename({"requests": "sent"}).join(after.group_by("listener_id").len(), on="listener_id")
            .with_columns((pl.col("sent") + pl.col("len")).alias("total")))
    assert week.height == 0 or week["total"].max() <= 2
    capped = decisions.filter(pl.col("reason").is_in(["weekly_cap_reached", "over_weekly_cap"]))
    assert capped.join(sent, on="listener_id").height > 0  # some day-1 recipients were held back by the cap
    assert unsubscribed not in after["listener_id"].to_list()
    assert after.join(again, on=["listener_id", "track_id"]).is_empty()
    hit = decisions.filter((pl.col("listener_id") == lid) & (pl.col("track_id") == tid))
    assert hit["reason"].to_list() == ["already_gave_feedback"]
