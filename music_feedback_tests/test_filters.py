"""Tests for the filter chain: each filter on hand-built candidates and context, and the chain itself."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import polars as pl
import pytest

from music_feedback.filters import FilterContext, build_chain, run_chain
from music_feedback.filters.chain import DECISION_COLUMNS
from music_feedback.filters.eligibility import EligibilityFilter
from music_feedback.filters.engagement import EngagementFilter
from music_feedback.filters.frequency_cap import FrequencyCapFilter
from music_feedback.filters.trust import TrustFilter
from music_feedback.programs.model import FilterSpec

pytestmark = pytest.mark.unit

DAY = date(2026, 11, 23)
CANDIDATE_SCHEMA = {
    "listener_id": pl.Int64, "track_id": pl.Int64, "play_count": pl.Int64, "completion_rate": pl.Float64,
    "last_played_at": pl.Datetime("us"), "engagement_score": pl.Float64,
}


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 23, hour, minute)


def candidates(*rows: tuple) -> pl.DataFrame:
    """Rows of (listener_id, track_id[, play_count, completion_rate, last_played_at, engagement_score])."""
    defaults = (None, None, 1, 0.97, at(12), 0.8)
    full = [tuple(row) + defaults[len(row):] for row in rows]
    return pl.DataFrame(full, schema=CANDIDATE_SCHEMA, orient="row")


def context(listeners=(), tracks=(), prior_feedback=(), recent_requests=()) -> FilterContext:
    """listeners: (id, opted_out, bot_score, is_authentic); tracks: (id, feedback_eligible);
    prior_feedback: (listener, track); recent_requests: (listener, prior_requests)."""
    return FilterContext(
        program_id="music-feedback", batch_date=DAY,
        listeners=pl.DataFrame(list(listeners), orient="row", schema={
            "listener_id": pl.Int64, "opted_out": pl.Boolean, "bot_score": pl.Float64,
            "is_authentic": pl.Boolean}),
        tracks=pl.DataFrame(list(tracks), orient="row",
                            schema={"track_id": pl.Int64, "feedback_eligible": pl.Boolean}),
        prior_feedback=pl.DataFrame(list(prior_feedback), orient="row",
                                    schema={"listener_id": pl.Int64, "track_id": pl.Int64}),
        recent_requests=pl.DataFrame(list(recent_requests), orient="row",
                                     schema={"listener_id": pl.Int64, "prior_requests": pl.Int64}),
    )


def engaged(frame: pl.DataFrame, ctx: FilterContext) -> FilterContext:
    """The context with each listener's engagement_score (the filter's source) taken from the test rows."""
    scores = frame.group_by("listener_id").agg(pl.col("engagement_score").first())
    listeners = ctx.listeners.drop("engagement_score", strict=False).join(
        scores, on="listener_id", how="full", coalesce=True)
    return replace(ctx, listeners=listeners)


def pairs(frame: pl.DataFrame) -> list[tuple[int, int]]:
    return sorted(frame.select("listener_id", "track_id").iter_rows())


def reasons(frame: pl.DataFrame) -> dict[tuple[int, int], str]:
    return {(lst, trk): r for lst, trk, r in frame.select("listener_id", "track_id", "reason").iter_rows()}


def assert_partition(result, frame: pl.DataFrame) -> None:
    """kept + removed is exactly the input: no row lost, none duplicated, none in both."""
    kept, removed = pairs(result.kept), pairs(result.removed)
    assert not set(kept) & set(removed)
    assert sorted(kept + removed) == pairs(frame)
    assert result.kept.height + result.removed.height == frame.height


# ---------------------------------------------------------------- trust

TRUST_CTX = context(listeners=[
    (1, False, 0.10, True),   # trusted
    (2, False, 0.70, True),   # bot score exactly at the default maximum
    (3, False, 0.6999, True),  # just under the maximum
    (4, False, 0.10, False),  # not authentic
    (5, False, 0.95, False),  # both: the bot reason wins
])


def test_trust_reasons_and_boundary():
    frame = candidates((1, 10), (2, 10), (3, 10), (4, 10), (5, 10), (99, 10))
    result = TrustFilter("trust").apply(frame, TRUST_CTX)
    assert pairs(result.kept) == [(1, 10), (3, 10)]
    assert reasons(result.removed) == {
        (2, 10): "bot_activity", (4, 10): "not_authentic", (5, 10): "bot_activity",
        (99, 10): "unknown_listener"}
    assert_partition(result, frame)


def test_trust_unknown_authenticity_is_not_trusted():
    """The trust filter drops unverified listeners: a null is_authentic is not a verification."""
    ctx = context(listeners=[(1, False, 0.1, None)])
    result = TrustFilter("trust").apply(candidates((1, 10)), ctx)
    assert result.kept.height == 0
    assert reasons(result.removed) == {(1, 10): "not_authentic"}


def test_trust_custom_max_bot_score():
    frame = candidates((1, 10), (3, 10))
    result = TrustFilter("trust", parameters={"maxBotScore": 0.1}).apply(frame, TRUST_CTX)
    assert result.kept.height == 0
    assert reasons(result.removed) == {(1, 10): "bot_activity", (3, 10): "bot_activity"}


def test_trust_kept_rows_keep_input_columns_and_values():
    frame = candidates((1, 10, 3, 0.99, at(9), 0.75), (3, 11, 1, 0.95, at(10), 0.65))
    result = TrustFilter("trust").apply(frame, TRUST_CTX)
    assert result.kept.columns[: len(frame.columns)] == frame.columns
    assert result.kept.select(frame.columns).sort("listener_id").equals(frame.sort("listener_id"))


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.5", True, None])
def test_trust_rejects_bad_max_bot_score(value):
    with pytest.raises(ValueError, match=r"filter 'my-trust'.*maxBotScore"):
        TrustFilter("my-trust", parameters={"maxBotScore": value})


# ---------------------------------------------------------------- eligibility

ELIGIBILITY_CTX = context(
    listeners=[(1, False, 0.1, True), (2, True, 0.1, True), (3, False, 0.1, True)],
    tracks=[(10, True), (11, False), (13, True)],
    prior_feedback=[(3, 10), (3, 10), (1, 13)],  # a duplicate pair must not duplicate candidates
)


def test_eligibility_reasons():
    frame = candidates((1, 10), (2, 10), (1, 11), (1, 12), (3, 10), (3, 13), (1, 13), (99, 10))
    result = EligibilityFilter("eligibility").apply(frame, ELIGIBILITY_CTX)
    assert pairs(result.kept) == [(1, 10), (3, 13)]
    assert reasons(result.removed) == {
        (2, 10): "opted_out",
        (1, 11): "track_not_eligible",
        (1, 12): "track_not_eligible",  # a track the warehouse does not know is not eligible
        (3, 10): "already_gave_feedback",
        (1, 13): "already_gave_feedback",
        (99, 10): "opted_out",  # an unknown listener never counts as opted in
    }
    assert_partition(result, frame)


def test_eligibility_finds_answered_pairs_with_ids_too_large_to_pack():
    """Ids past one packed int64 key take the two-column join: the same reasons."""
    big = 2**40
    frame = candidates((1, 10), (big, 10), (big, 13), (1, 13))
    ctx = context(listeners=[(1, False, 0.1, True), (big, False, 0.1, True)], tracks=[(10, True), (13, True)],
                  prior_feedback=[(big, 10), (big, 10), (1, 13)])
    result = EligibilityFilter("eligibility").apply(frame, ctx)
    assert pairs(result.kept) == [(1, 10), (big, 13)]
    assert reasons(result.removed) == {(big, 10): "already_gave_feedback", (1, 13): "already_gave_feedback"}


def test_eligibility_opt_out_takes_precedence():
    frame = candidates((2, 11))
    ctx = context(listeners=[(2, True, 0.1, True)], tracks=[(11, False)], prior_feedback=[(2, 11)])
    result = EligibilityFilter("eligibility").apply(frame, ctx)
    assert reasons(result.removed) == {(2, 11): "opted_out"}


def test_eligibility_takes_no_parameters():
    with pytest.raises(ValueError, match=r"filter 'eligibility'.*unknown parameter.*strict"):
        EligibilityFilter("eligibility", parameters={"strict": True})


# ---------------------------------------------------------------- engagement

def test_engagement_threshold_is_inclusive():
    frame = candidates((1, 1, 1, 0.97, at(1), 0.6), (2, 1, 1, 0.97, at(1), 0.5999),
                       (3, 1, 1, 0.97, at(1), 1.0), (4, 1, 1, 0.97, at(1), 0.0))
    result = EngagementFilter("engagement").apply(frame, engaged(frame, context()))
    assert pairs(result.kept) == [(1, 1), (3, 1)]
    assert reasons(result.removed) == {(2, 1): "low_engagement", (4, 1): "low_engagement"}
    assert_partition(result, frame)
    assert result.kept.columns == frame.columns


def test_engagement_custom_threshold():
    frame = candidates((1, 1, 1, 0.97, at(1), 0.6), (2, 1, 1, 0.97, at(1), 0.8))
    result = EngagementFilter("engagement", parameters={"minEngagementScore": 0.8}).apply(frame, engaged(frame, context()))
    assert pairs(result.kept) == [(2, 1)]
    assert reasons(result.removed) == {(1, 1): "low_engagement"}
    everyone = EngagementFilter("engagement", parameters={"minEngagementScore": 0}).apply(frame, engaged(frame, context()))
    assert everyone.removed.height == 0


@pytest.mark.parametrize("value", [-0.01, 1.01, "high", False])
def test_engagement_rejects_bad_threshold(value):
    with pytest.raises(ValueError, match=r"filter 'engagement'.*minEngagementScore"):
        EngagementFilter("engagement", parameters={"minEngagementScore": value})


# ---------------------------------------------------------------- frequency cap

def test_frequency_cap_keeps_strongest_candidate_by_each_tie_breaker():
    frame = candidates(
        # listener 1: more plays wins over higher completion and a later play
        (1, 1, 2, 0.99, at(20)), (1, 2, 3, 0.95, at(8)),
        # listener 2: equal plays, higher completion wins over a later play
        (2, 1, 2, 0.96, at(20)), (2, 2, 2, 0.99, at(8)),
        # listener 3: equal plays and completion, the later play wins over the lower track id
        (3, 1, 2, 0.97, at(8)), (3, 2, 2, 0.97, at(20)),
        # listener 4: all equal, the lower track id wins
        (4, 7, 2, 0.97, at(12)), (4, 5, 2, 0.97, at(12)),
    )
    ctx = context(recent_requests=[(1, 1), (2, 1), (3, 1), (4, 1)])
    result = FrequencyCapFilter("frequency-cap", parameters={"maxRequestsPerWeek": 2}).apply(frame, ctx)
    assert pairs(result.kept) == [(1, 2), (2, 2), (3, 2), (4, 5)]
    assert reasons(result.removed) == {(1, 1): "over_weekly_cap", (2, 1): "over_weekly_cap",
                                       (3, 1): "over_weekly_cap", (4, 7): "over_weekly_cap"}
    assert_partition(result, frame)
    # the choice does not depend on the input order
    shuffled = FrequencyCapFilter("frequency-cap").apply(frame.reverse(), ctx)
    assert pairs(shuffled.kept) == pairs(result.kept)


def test_frequency_cap_reached_and_room_left():
    frame = candidates(
        (5, 1), (5, 2),                      # 2 prior requests: cap reached
        (6, 1),                              # 3 prior requests: over the cap already
        (7, 1, 1), (7, 2, 3), (7, 3, 2),     # no prior requests: keeps its two strongest
        (8, 1),                              # 1 prior request, one candidate: kept
    )
    ctx = context(recent_requests=[(5, 2), (6, 3), (8, 1), (42, 2)])
    result = FrequencyCapFilter("frequency-cap").apply(frame, ctx)
    assert pairs(result.kept) == [(7, 2), (7, 3), (8, 1)]
    assert reasons(result.removed) == {(5, 1): "weekly_cap_reached", (5, 2): "weekly_cap_reached",
                                       (6, 1): "weekly_cap_reached", (7, 1): "over_weekly_cap"}
    assert_partition(result, frame)
    assert result.kept["requests_this_week"].max() <= 2


def test_frequency_cap_zero_removes_everyone():
    frame = candidates((1, 1), (2, 1))
    result = FrequencyCapFilter("cap", parameters={"maxRequestsPerWeek": 0}).apply(frame, engaged(frame, context()))
    assert result.kept.height == 0
    assert set(reasons(result.removed).values()) == {"weekly_cap_reached"}


@pytest.mark.parametrize("value", [2.0, True, -1, 1001, "2"])
def test_frequency_cap_rejects_bad_cap(value):
    with pytest.raises(ValueError, match=r"filter 'frequency-cap'.*maxRequestsPerWeek"):
        FrequencyCapFilter("frequency-cap", parameters={"maxRequestsPerWeek": value})


# ---------------------------------------------------------------- every filter loses no row

MIXED = candidates(
    (1, 10, 3, 0.99, at(9), 0.9), (1, 11, 1, 0.96, at(10), 0.9), (1, 13, 2, 0.97, at(11), 0.9),
    (2, 10, 1, 0.95, at(9), 0.3), (3, 10, 2, 0.98, at(9), 0.7), (3, 13, 1, 0.95, at(9), 0.55),
    (4, 10, 1, 0.99, at(9), 0.9), (99, 13, 1, 0.99, at(9), 0.9),
)
MIXED_CTX = context(
    listeners=[(1, False, 0.1, True), (2, True, 0.2, True), (3, False, 0.8, True), (4, False, 0.1, False)],
    tracks=[(10, True), (11, False), (13, True)], prior_feedback=[(1, 13)], recent_requests=[(1, 1), (4, 2)],
)


@pytest.mark.parametrize("flt", [TrustFilter("trust"), EligibilityFilter("eligibility"),
                                 EngagementFilter("engagement"), FrequencyCapFilter("frequency-cap")],
                         ids=lambda f: f.kind)
def test_no_row_lost(flt):
    result = flt.apply(MIXED, engaged(MIXED, MIXED_CTX))
    assert_partition(result, MIXED)
    assert result.removed["reason"].null_count() == 0
    assert "reason" not in result.kept.columns


# ---------------------------------------------------------------- chain

def spec(filter_id: str, type_: str, order: int, parameters: dict | None = None, **extra) -> FilterSpec:
    raw = {"filterId": filter_id, "type": type_, "order": order, **extra}
    if parameters is not None:
        raw["parameters"] = parameters
    return FilterSpec.model_validate(raw)


SHIPPED_SPECS = [
    spec("frequency-cap", "business-rule", 4, {"maxRequestsPerWeek": 2}),
    spec("trust", "trust", 1),
    spec("engagement", "business-rule", 3, {"minEngagementScore": 0.6}),
    spec("eligibility", "eligibility", 2),
]


def test_build_chain_orders_by_order_and_picks_kinds():
    chain = build_chain(SHIPPED_SPECS)
    assert [f.name for f in chain] == ["trust", "eligibility", "engagement", "frequency-cap"]
    assert [type(f) for f in chain] == [TrustFilter, EligibilityFilter, EngagementFilter, FrequencyCapFilter]
    assert chain[0].params == {"maxBotScore": 0.7}  # defaults fill what the spec leaves out
    assert chain[2].params == {"minEngagementScore": 0.6}
    assert all(f.enabled for f in chain)


def test_build_chain_business_rule_named_by_rule():
    *policy, flt = build_chain([spec("weekly-limit", "business-rule", 1, {"maxRequestsPerWeek": 1},
                                     rule="frequency-cap")])
    assert [f.name for f in policy] == ["policy:trust", "policy:opt-out"]  # contact policy is always there
    assert isinstance(flt, FrequencyCapFilter)
    assert flt.name == "weekly-limit" and flt.params == {"maxRequestsPerWeek": 1}


def test_build_chain_unknown_parameter_names_filter_and_parameter():
    with pytest.raises(ValueError, match=r"filter 'engagement'.*bogus"):
        build_chain([spec("engagement", "business-rule", 1, {"minEngagementScore": 0.6, "bogus": 1})])


def test_build_chain_out_of_range_parameter_names_filter_and_parameter():
    with pytest.raises(ValueError, match=r"filter 'engagement'.*minEngagementScore.*1\.5"):
        build_chain([spec("engagement", "business-rule", 1, {"minEngagementScore": 1.5})])
    with pytest.raises(ValueError, match=r"filter 'trust'.*maxBotScore"):
        build_chain([spec("trust", "trust", 1, {"maxBotScore": 2})])


@pytest.mark.parametrize("extra, name", [({}, "novelty"), ({"rule": "novelty-rule"}, "novelty-rule")])
def test_build_chain_unknown_business_rule(extra, name):
    with pytest.raises(ValueError, match=rf"no filter of kind '{name}'"):
        build_chain([spec("novelty", "business-rule", 1, **extra)])


def test_run_chain_counts_and_decisions():
    result = run_chain(build_chain(SHIPPED_SPECS), MIXED, engaged(MIXED, MIXED_CTX))
    # trust: 3 is a bot, 4 is not authentic, 99 unknown;
    # eligibility: 2 opted out, (1,11) closed, (1,13) answered;
    # engagement: nobody left below 0.6; frequency cap: listener 1 has room for one more, and has one left.
    assert pairs(result.kept) == [(1, 10)]
    assert result.removed_by_filter == {"trust": 4, "eligibility": 3, "engagement": 0, "frequency-cap": 0}
    assert set(result.seconds_by_filter) == {"trust", "eligibility", "engagement", "frequency-cap"}
    assert result.decisions.columns == DECISION_COLUMNS
    rows = {(r["listener_id"], r["track_id"]): (r["stage"], r["filter"], r["reason"])
            for r in result.decisions.iter_rows(named=True)}
    assert rows == {
        (3, 10): ("filter", "trust", "bot_activity"), (3, 13): ("filter", "trust", "bot_activity"),
        (4, 10): ("filter", "trust", "not_authentic"), (99, 13): ("filter", "trust", "unknown_listener"),
        (2, 10): ("filter", "eligibility", "opted_out"),
        (1, 11): ("filter", "eligibility", "track_not_eligible"),
        (1, 13): ("filter", "eligibility", "already_gave_feedback"),
    }
    assert sorted(pairs(result.kept) + pairs(result.decisions)) == pairs(MIXED)
    # Enums of the chain's codes and filter names, sorted as text, compared as text
    assert isinstance(result.decisions.schema["reason"], pl.Enum)
    assert result.decisions.schema["reason"].categories.to_list() == sorted(
        {c for f in build_chain(SHIPPED_SPECS) for c in f.codes})
    assert result.decisions.filter(pl.col("filter") == "eligibility").height == 3


def test_run_chain_gives_categories_back_as_text():
    """The unify's text columns are categories; what the chain keeps goes on as text (the store and the
    ledger join it with text)."""
    frame = MIXED.with_columns(pl.lit("US").cast(pl.Categorical).alias("marketplace"),
                               pl.lit("pop").cast(pl.Categorical).alias("genre"))
    result = run_chain(build_chain(SHIPPED_SPECS), frame.lazy(), engaged(MIXED, MIXED_CTX))
    assert pairs(result.kept) == [(1, 10)]
    assert result.kept.schema["marketplace"] == result.kept.schema["genre"] == pl.String
    assert result.kept.select("marketplace", "genre").row(0) == ("US", "pop")


def test_run_chain_cap_after_other_filters():
    frame = candidates((1, 10, 1), (1, 13, 5), (1, 14, 2), (2, 15, 1, 0.97, at(1), 0.2))
    ctx = context(listeners=[(1, False, 0.1, True), (2, False, 0.1, True)],
                  tracks=[(10, True), (13, True), (14, True), (15, True)], recent_requests=[(1, 1)])
    result = run_chain(build_chain(SHIPPED_SPECS), frame, engaged(frame, ctx))
    assert pairs(result.kept) == [(1, 13)]
    assert reasons(result.decisions) == {(1, 10): "over_weekly_cap", (1, 14): "over_weekly_cap",
                                         (2, 15): "low_engagement"}
    assert result.removed_by_filter == {"trust": 0, "eligibility": 0, "engagement": 1, "frequency-cap": 2}


def test_run_chain_order_decides_which_filter_removes():
    frame = candidates((3, 10, 1, 0.97, at(1), 0.2))  # a bot with low engagement
    ctx = context(listeners=[(3, False, 0.9, True)])
    trust_first = run_chain(build_chain([spec("trust", "trust", 1),
                                         spec("engagement", "business-rule", 2)]), frame, engaged(frame, ctx))
    engagement_first = run_chain(build_chain([spec("trust", "trust", 2),
                                              spec("engagement", "business-rule", 1)]), frame, engaged(frame, ctx))
    assert trust_first.decisions.select("filter", "reason").row(0) == ("trust", "bot_activity")
    assert engagement_first.decisions.select("filter", "reason").row(0) == ("engagement", "low_engagement")


def test_run_chain_skips_disabled_filter():
    specs = [spec("trust", "trust", 1), spec("engagement", "business-rule", 2, {"minEngagementScore": 0.6},
                                             enabled=False)]
    chain = [f for f in build_chain(specs) if not f.name.startswith("policy:")]
    assert [f.enabled for f in chain] == [True, False]
    frame = candidates((1, 10, 1, 0.97, at(1), 0.1), (3, 10, 1, 0.97, at(1), 0.9))
    ctx = context(listeners=[(1, False, 0.1, True), (3, False, 0.9, True)])
    result = run_chain(chain, frame, ctx)
    assert pairs(result.kept) == [(1, 10)]  # low engagement, but the engagement filter is off
    assert result.removed_by_filter == {"trust": 1}
    assert "engagement" not in result.seconds_by_filter
    assert result.decisions["filter"].to_list() == ["trust"]


def test_run_chain_with_nothing_enabled_keeps_everything():
    chain = [EngagementFilter("engagement", enabled=False)]
    result = run_chain(chain, MIXED, MIXED_CTX)
    assert result.kept.equals(MIXED)
    assert result.decisions.height == 0
    assert result.decisions.columns == DECISION_COLUMNS
    assert result.removed_by_filter == {}


def test_eligibility_removes_listeners_outside_the_program_marketplaces():
    frame = candidates((1, 10), (2, 10), (3, 10)).with_columns(pl.Series("marketplace", ["US", "JP", None]))
    ctx = context(listeners=[(1, False, 0.1, True), (2, False, 0.1, True), (3, False, 0.1, True)],
                  tracks=[(10, True)])
    ctx = FilterContext(**{**ctx.__dict__, "marketplaces": ("US", "UK")})
    result = EligibilityFilter("eligibility").apply(frame, ctx)
    assert pairs(result.kept) == [(1, 10)]
    assert reasons(result.removed) == {(2, 10): "marketplace_not_in_program", (3, 10): "marketplace_not_in_program"}


def test_engagement_unknown_score_is_not_engaged():
    frame = candidates((1, 1, 1, 0.97, at(1), None), (2, 1, 1, 0.97, at(1), 0.9))
    result = EngagementFilter("engagement").apply(frame, engaged(frame, context()))
    assert pairs(result.kept) == [(2, 1)]
    assert reasons(result.removed) == {(1, 1): "low_engagement"}


def test_engagement_reads_the_listener_not_the_play_row():
    """One source: a listener whose score is unknown in `listeners` is removed, whatever the play row says."""
    frame = candidates((1, 1, 1, 0.97, at(1), 0.9), (2, 1, 1, 0.97, at(1), 0.1))
    ctx = context(listeners=[(1, False, 0.1, True), (2, False, 0.1, True)])
    listeners = ctx.listeners.with_columns(pl.Series("engagement_score", [None, 0.9], dtype=pl.Float64))
    result = EngagementFilter("engagement").apply(frame, replace(ctx, listeners=listeners))
    assert reasons(result.removed) == {(1, 1): "low_engagement"}
    assert pairs(result.kept) == [(2, 1)]


def test_a_reason_code_must_be_one_the_filter_declares():
    """Codes are literals of the filter's Enum, so a misspelt code fails when the expression is built,
    not as an unknown reason in candidate_decisions."""
    from music_feedback.filters.trust import TrustFilter
    flt = TrustFilter("trust")
    assert pl.select(flt.code("bot_activity").cast(pl.String)).item() == "bot_activity"
    with pytest.raises(pl.exceptions.PolarsError):
        pl.select(flt.code("bot_activty"))
