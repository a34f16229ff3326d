"""Nine consecutive simulated days at a tiny scale, tried as an operator would (unsubscribes between days,
voice prompts on earlier batches, a held-out listener answering anyway, an email sender killed mid-run and
resumed), then the contact promises audited from the stores themselves, not from the policy module."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from dagster import instance_for_test

from music_feedback import runner
from music_feedback.definitions import build_definitions
from music_feedback.programs.loader import load_programs
from music_feedback_tools.simulate.audit import RULES, summary
from music_feedback_tools.simulate.days import run_days
from music_feedback.warehouse.generator import WarehouseSpec, generate

pytestmark = pytest.mark.graph

N_DAYS = 9
# Days ending yesterday: candidates expire 14 days after their batch, and a read on the wall clock (a
# store's default) must still see the earliest day's.
END = datetime.now(timezone.utc).date() - timedelta(days=1)
TINY = WarehouseSpec(listeners=2_000, tracks=200, plays_per_day=4_000, outcomes=2_000, days=N_DAYS, end_date=END)


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    home = tmp_path_factory.mktemp("policy-days")
    generate(home / "warehouse.duckdb", TINY, progress=False)
    mp = pytest.MonkeyPatch()
    mp.setenv("MUSIC_FEEDBACK_HOME", str(home))
    mp.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(home / "warehouse.duckdb"))
    for var in ("MUSIC_FEEDBACK_ENV", "MUSIC_FEEDBACK_PROGRAM", "MUSIC_FEEDBACK_PROGRAMS_DIR"):
        mp.delenv(var, raising=False)
    program, defs = load_programs()[0], build_definitions()
    batch_days = [TINY.start_date + timedelta(days=i) for i in range(N_DAYS)]
    with instance_for_test() as instance:
        runner.ensure_models(defs, program, instance, day=batch_days[0])  # a champion from before the first day
        # every day runs even if one fails, so the audit sees all of them
        report = run_days(defs, program, batch_days, instance, crashes=1, stop_on_failure=False, service_workers=1)
    mp.undo()
    print(summary(report.audit), dict(report.actions), report.crashes, sep="\n")
    return report


@pytest.mark.timeout(900)
def test_nine_days_ran_with_what_the_operator_tried(days):
    assert [d.failure for d in days.days] == [None] * N_DAYS
    audit, actions = days.audit, days.actions
    assert audit["policy_days"] == N_DAYS
    assert audit["policy_contacts_examined"] > 500
    by_channel = audit["contacts_by_channel"]
    assert by_channel.get("email", 0) > 0 and by_channel.get("voice-assistant", 0) > 0
    assert audit["rules"]["messages"]["checked"] and audit["rules"]["off_clock"]["checked"]
    assert actions["unsubscribed"] >= N_DAYS
    assert sum(v for k, v in actions.items() if k.startswith("voice_") and k.endswith("_prompted")) > 0
    assert sum(v for k, v in actions.items() if k.startswith("voice_") and k.endswith("_answer_200")) > 0
    assert actions["held_out_voice_prompted"] > 0
    assert sum(v for k, v in actions.items() if k.startswith("held_out_feedback_api_")) > 0


@pytest.mark.timeout(900)
def test_a_sender_killed_mid_run_resumes_without_repeating_or_skipping(days):
    landed = [c for c in days.crashes if c["mid_send"]]
    assert landed, f"no kill landed mid-send: {days.crashes}"
    for crash in landed:
        assert crash["written_before_kill"] > 0 and crash["unsettled_after_kill"] > 0
        assert crash["rewritten"] == 0 and crash["unsettled_after_resume"] == 0, crash


@pytest.mark.timeout(900)
@pytest.mark.parametrize("rule", RULES)
def test_no_promise_is_broken(days, rule):
    found = days.audit["rules"][rule]
    assert found["violations"] == 0, f"{rule}: {found['violations']} violation(s), e.g. {found['examples']}"


@pytest.mark.timeout(900)
def test_held_out_and_unsubscribed_listeners_are_refused_at_the_door(days):
    """Answers from held-out listeners are refused with a 4xx; an unsubscribed listener is offered nothing."""
    accepted = {k: v for k, v in days.actions.items()
                if k.startswith(("held_out_voice_answer_2", "held_out_feedback_api_2"))}
    assert accepted == {}
    assert days.actions["candidates_served_after_unsubscribe"] == 0
