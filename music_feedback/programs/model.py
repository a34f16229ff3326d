"""Typed program configuration: the seed's YAML, validated strictly at load."""
from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from music_feedback.scoring.features import LISTENER_FEATURES, TRACK_FEATURES
from music_feedback.warehouse.schema import GENRES, MARKETPLACE_TIMEZONES

FEATURE_NAMES = LISTENER_FEATURES + TRACK_FEATURES  # one definition for config, training and scoring
QUERY_PARAMS = (":batch_start", ":batch_end", ":release_window_start")
# The first batch day of a program that names none. Fixed, not read from a warehouse: the partitions, and so
# the definitions, never depend on a file on disk. A generated warehouse's default days come after it.
DEFAULT_PARTITIONS_START = "2026-11-01"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ConnectorConfig(Strict):
    table: str
    query: str
    cluster: str | None = None
    database: str | None = None

    @field_validator("query")
    @classmethod
    def _binds_batch_window(cls, query: str) -> str:
        missing = [p for p in QUERY_PARAMS if p not in query]
        if missing:
            raise ValueError(f"query must use the batch window parameters {', '.join(missing)}")
        return query


class DataConnector(Strict):
    connector_id: str = Field(alias="connectorId")
    type: Literal["redshift", "duckdb"]
    config: ConnectorConfig


class ScoringModel(Strict):
    model_id: str = Field(alias="modelId")
    endpoint: str
    features: list[str] = Field(min_length=1)
    role: Literal["propensity", "affinity"] | None = None

    @field_validator("features")
    @classmethod
    def _known_features(cls, features: list[str]) -> list[str]:
        unknown = [f for f in features if f not in FEATURE_NAMES]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; known: {list(FEATURE_NAMES)}")
        return features

    @property
    def endpoint_name(self) -> str:
        """The SageMaker endpoint name: `sagemaker://name` or a bare name."""
        return self.endpoint.removeprefix("sagemaker://")

    @model_validator(mode="after")
    def _infer_role(self) -> "ScoringModel":
        if self.role is None:
            for role in ("propensity", "affinity"):
                if role in self.model_id:
                    object.__setattr__(self, "role", role)
                    return self
            raise ValueError(f"cannot tell the role of model {self.model_id!r}: set role: propensity|affinity")
        return self


class FilterSpec(Strict):
    filter_id: str = Field(alias="filterId")
    type: Literal["trust", "eligibility", "business-rule"]
    order: int
    enabled: bool = True
    rule: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The registered filter to build: the type, or for business rules the rule (default: filterId)."""
        return (self.rule or self.filter_id) if self.type == "business-rule" else self.type

    @field_validator("parameters")
    @classmethod
    def _cap_at_least_one(cls, parameters: dict[str, Any], info) -> dict[str, Any]:
        # A cap of 0 would silently stop every request of every channel: refuse it at load instead.
        d = info.data
        kind = (d.get("rule") or d.get("filter_id")) if d.get("type") == "business-rule" else d.get("type")
        cap = parameters.get("maxRequestsPerWeek")
        if kind == "frequency-cap" and isinstance(cap, (int, float)) and not isinstance(cap, bool) \
                and (cap < 1 or cap != int(cap)):
            raise ValueError(f"maxRequestsPerWeek (the weekly cap) must be a whole number of at least 1, got {cap}")
        return parameters


class EmailChannelConfig(Strict):
    template_id: Literal["track-feedback-v2"] = Field(alias="templateId")
    send_time: str = Field(alias="sendTime")
    # "local": each marketplace's time zone (the program's marketplaceTimeZones); else one IANA zone.
    timezone: str
    min_score: float = Field(0.6, alias="minScore", ge=0.0, le=1.0)
    limit: int = Field(100_000, gt=0, le=1_000_000)
    max_per_track: int = Field(10_000, alias="maxPerTrack", gt=0)
    # A request not sent this long after its send time is recorded as expired, never sent late.
    max_lateness_hours: float = Field(4.0, alias="maxLatenessHours", gt=0, le=48)
    from_address: str = Field("Music Feedback <feedback@music-feedback.example>", alias="fromAddress")

    @field_validator("send_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"must be HH:MM on a 24-hour clock, such as '10:00'; got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        if zone != "local":
            _zone(zone)
        return zone


class VoiceChannelConfig(Strict):
    prompt: str = Field(pattern=r"\{trackName\}")
    response_options: list[Literal["yes", "no"]] = Field(alias="responseOptions", min_length=2)


MIN_UNSUBSCRIBE_TTL_DAYS = 30  # CAN-SPAM: an opt-out must work for 30 days after the message is sent


class FeedbackSettings(Strict):
    """The feedback form: the genre tags a listener may pick, and how long a link stays valid."""
    tags: list[str] = Field(default_factory=lambda: list(GENRES), alias="tags", min_length=1)
    comment_max_length: int = Field(200, alias="commentMaxLength", gt=0, le=2000)
    link_ttl_days: int = Field(14, alias="linkTTLDays", gt=0, le=90)
    # The unsubscribe link lives apart: it must work while the message may be read (US law asks for 30 days
    # after sending at least; mailbox providers expect one-click unsubscribe to work while it is in the inbox).
    unsubscribe_ttl_days: int = Field(365, alias="unsubscribeTTLDays", le=3650)

    @field_validator("unsubscribe_ttl_days")
    @classmethod
    def _unsubscribe_outlives_the_law(cls, days: int) -> int:
        if days < MIN_UNSUBSCRIBE_TTL_DAYS:
            raise ValueError(f"unsubscribeTTLDays is {days}: an unsubscribe link must work for at least "
                             f"{MIN_UNSUBSCRIBE_TTL_DAYS} days after sending (the default is 365)")
        return days


class PlaylistSettings(Strict):
    """How feedback moves tracks in and out of the curated playlists (one per genre and marketplace)."""
    method: Literal["bayesian", "wilson"] = "bayesian"
    prior_strength: float = Field(10.0, alias="priorStrength", gt=0)  # pseudo-votes of the genre's baseline
    half_life_days: float = Field(14.0, alias="halfLifeDays", gt=0)  # older votes count less
    min_votes: int = Field(5, alias="minVotes", ge=1)  # evidence needed before a track enters or leaves
    enter_score: float = Field(0.7, alias="enterScore", gt=0, lt=1)
    leave_score: float = Field(0.55, alias="leaveScore", gt=0, lt=1)
    recalculate_after: int = Field(1000, alias="recalculateAfter", ge=1)  # new answers that trigger a recount

    @model_validator(mode="after")
    def _hysteresis(self) -> "PlaylistSettings":
        if self.leave_score > self.enter_score:
            raise ValueError("leaveScore must not be above enterScore")
        return self


class ScoreBands(Strict):
    """Where the high and medium score bands start (low is below medium): one vocabulary for the batch's
    printout, the report and the metrics sink."""
    high: float = Field(0.7, gt=0.0, le=1.0)
    medium: float = Field(0.4, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> "ScoreBands":
        if self.medium >= self.high:
            raise ValueError(f"scoreBands.medium ({self.medium}) must be below scoreBands.high ({self.high})")
        return self


class MetricsSettings(Strict):
    """Unit costs for cost per feedback (in `currency` per message or prompt), and the score bands."""
    unit_costs: dict[str, float] = Field(default_factory=lambda: {"email": 0.0004, "voice": 0.002}, alias="unitCosts")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")  # ISO 4217 code of unitCosts
    score_bands: ScoreBands = Field(default_factory=ScoreBands, alias="scoreBands")


class HoldoutSettings(Strict):
    """Listeners held out (never asked) so the program's effect can be measured against them."""
    share: float = Field(0.05, ge=0.0, lt=1.0)
    salt: str = Field("holdout-v1", min_length=1)  # change it to draw a new holdout


class Channel(Strict):
    channel_id: str = Field(alias="channelId")
    type: Literal["email", "voice"]
    enabled: bool = True
    config: dict[str, Any]

    def typed_config(self) -> EmailChannelConfig | VoiceChannelConfig:
        """The config checked against its channel type (the loader reports errors under `config`)."""
        model = EmailChannelConfig if self.type == "email" else VoiceChannelConfig
        return model.model_validate(self.config)


class ScoringSettings(Strict):
    batch_size: int = Field(2000, alias="batchSize", gt=0, le=100_000)
    propensity_weight: float = Field(0.5, alias="propensityWeight", ge=0.0, le=1.0)
    promotion_margin: float = Field(0.005, alias="promotionMargin", ge=-1.0, le=1.0)  # AUC a challenger must gain


class Program(Strict):
    program_id: str = Field(alias="programId", pattern=r"^[a-z][a-z0-9-]*$")
    program_name: str = Field(alias="programName")
    enabled: bool = True
    marketplaces: list[str] = Field(min_length=1)
    data_connectors: list[DataConnector] = Field(alias="dataConnectors", min_length=1)
    scoring_models: list[ScoringModel] = Field(alias="scoringModels", min_length=2, max_length=2)
    filter_chain: list[FilterSpec] = Field(alias="filterChain")
    channels: list[Channel] = Field(min_length=1)
    batch_schedule: str = Field(alias="batchSchedule")
    candidate_ttl_days: int = Field(alias="candidateTTLDays", gt=0, le=365)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    # Each marketplace's time zone for local send times; defaults to the warehouse's main zone of each.
    marketplace_time_zones: dict[str, str] = Field(default_factory=dict, alias="marketplaceTimeZones",
                                                   validate_default=True)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    holdout: HoldoutSettings = Field(default_factory=HoldoutSettings)
    playlists: PlaylistSettings = Field(default_factory=PlaylistSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    # The first daily partition (batch day); the training weeks start two weeks before it.
    partitions_start_date: str = Field(DEFAULT_PARTITIONS_START, alias="partitionsStartDate",
                                       pattern=r"^\d{4}-\d{2}-\d{2}$")

    @model_validator(mode="after")
    def _consistent(self) -> "Program":
        roles = sorted(m.role for m in self.scoring_models)
        if roles != ["affinity", "propensity"]:
            raise ValueError("scoringModels needs one propensity and one affinity model")
        orders = [f.order for f in self.filter_chain]
        if len(set(orders)) != len(orders):
            raise ValueError("filterChain orders must be distinct")
        ids = [f.filter_id for f in self.filter_chain]
        if len(set(ids)) != len(ids):
            raise ValueError(f"filterChain filterIds must be distinct, got {ids}")
        cron_fields(self.batch_schedule)
        return self

    @field_validator("partitions_start_date")
    @classmethod
    def _a_calendar_day(cls, day: str) -> str:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise ValueError(f"{day} is not a calendar date (YYYY-MM-DD)") from None
        return day

    @property
    def first_batch_day(self) -> date:
        """The first day the batch can process: the first daily partition."""
        return date.fromisoformat(self.partitions_start_date)

    @field_validator("marketplace_time_zones")
    @classmethod
    def _zones(cls, zones: dict[str, str], info) -> dict[str, str]:
        """Every marketplace a local send time needs has a known zone: a typo would move its email by hours."""
        markets = info.data.get("marketplaces") or []
        for market, zone in zones.items():
            if market not in markets:
                raise ValueError(f"marketplaceTimeZones names {market!r}, which is not in marketplaces")
            try:
                _zone(zone)
            except ValueError as exc:
                raise ValueError(f"marketplace {market}: {exc}") from None
        local = any(c.enabled and c.type == "email" and c.config.get("timezone") == "local"
                    for c in info.data.get("channels") or [])
        for market in markets if local else ():
            if market not in zones and market not in MARKETPLACE_TIMEZONES:
                raise ValueError(f"marketplace {market} has no known time zone for the email's local sendTime: "
                                 f"set marketplaceTimeZones.{market} to an IANA name such as 'Europe/Berlin'")
        return zones

    def time_zone(self, marketplace: str) -> str:
        """The IANA zone of a marketplace's local send time."""
        return self.marketplace_time_zones.get(marketplace) or MARKETPLACE_TIMEZONES.get(marketplace, ("UTC",))[0]

    def channel(self, channel_type: str) -> Channel | None:
        """The first enabled channel of a type (email, voice), if any."""
        return next((c for c in self.enabled_channels() if c.type == channel_type), None)

    @property
    def slug(self) -> str:
        """Identifier safe for Dagster names: music-feedback -> music_feedback."""
        return self.program_id.replace("-", "_")

    @property
    def connector(self) -> DataConnector:
        return self.data_connectors[0]

    def model(self, role: str) -> ScoringModel:
        return next(m for m in self.scoring_models if m.role == role)

    def ordered_filters(self) -> list[FilterSpec]:
        return sorted(self.filter_chain, key=lambda f: f.order)

    def enabled_channels(self) -> list[Channel]:
        return [c for c in self.channels if c.enabled]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'") from None


_AWS_CRON = re.compile(r"^cron\((.+)\)$")


def cron_fields(expr: str) -> tuple[int, int]:
    """(minute, hour) of a daily schedule, from an AWS `cron(m h * * ? *)` or a 5-field cron."""
    m = _AWS_CRON.match(expr.strip())
    fields = (m.group(1) if m else expr).split()
    daily = (len(fields) in (5, 6) and fields[0].isdigit() and fields[1].isdigit()
             and fields[2] in ("*", "?") and fields[3] == "*" and fields[4] in ("*", "?")
             and (len(fields) == 5 or fields[5] == "*"))
    if not daily:
        raise ValueError(f"batchSchedule {expr!r} must be a daily cron such as 'cron(0 2 * * ? *)'")
    minute, hour = int(fields[0]), int(fields[1])
    if not (0 <= minute < 60 and 0 <= hour < 24):
        raise ValueError(f"batchSchedule {expr!r} has an invalid minute or hour")
    return minute, hour
