"""Generate the embedded DuckDB warehouse: listeners, tracks, plays, feedback and outcome history.

Everything is drawn from listener and track attributes with fixed priors; the filter shares the batch
reports are whatever these attributes produce when they pass through the real filters.
"""
from __future__ import annotations

import os
import queue
import shutil
import threading
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from tqdm import tqdm

from music_feedback.warehouse.port import RELEASE_WINDOW_DAYS
from music_feedback.warehouse.schema import GENRES, MARKETPLACE_TIMEZONES, TABLES

MARKETPLACE_SHARE = {"US": 0.40, "UK": 0.15, "DE": 0.12, "FR": 0.10, "JP": 0.13, "IN": 0.10}
GENRE_PRIOR = np.array([0.22, 0.15, 0.16, 0.10, 0.08, 0.07, 0.08, 0.05, 0.04, 0.05])
DAY_S = 86_400


@dataclass(frozen=True)
class WarehouseSpec:
    """Size and shape of a generated warehouse; the defaults reproduce the seed's daily volumes."""
    listeners: int = 800_000
    tracks: int = 40_000
    plays_per_day: int = 1_600_000  # listener+track completions of new tracks drawn per day
    days: int = 2
    end_date: date = field(default_factory=lambda: datetime.now(timezone.utc).date() - timedelta(days=1))
    seed: int = 7
    outcomes: int = 300_000
    program_ids: tuple[str, ...] = ("music-feedback",)  # history rows are spread over these programs

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)

    @classmethod
    def scaled(cls, scale: float) -> "WarehouseSpec":
        """The default day times `scale` (listeners, tracks and plays; the training history stays)."""
        base = cls()
        return cls(listeners=max(int(base.listeners * scale), 100), tracks=max(int(base.tracks * scale), 200),
                   plays_per_day=max(int(base.plays_per_day * scale), 100))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _weighted_pick(rng, weights: np.ndarray, n: int) -> np.ndarray:
    """Indices drawn with probability proportional to weights (inverse-CDF, fast for millions)."""
    cdf = np.cumsum(weights)
    return np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1]), len(weights) - 1)


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp())


def _ts(seconds: np.ndarray) -> pl.Series:
    return pl.Series(seconds.astype("int64") * 1_000_000).cast(pl.Datetime("us"))


def _days(d0: date, offsets: np.ndarray) -> pl.Series:
    return pl.Series((offsets + (d0 - date(1970, 1, 1)).days).astype("int32")).cast(pl.Date)


class _Generator:
    """Today's generator: every listener in memory at once, one stream of draws (the 1x output is pinned).

    `offset` is the listener index of this generator's first listener and `n_listeners` how many it holds:
    0 and all of them here, a chunk's in `_Chunk`."""
    offset = 0

    def __init__(self, spec: WarehouseSpec, rng: np.random.Generator | None = None):
        self.spec = spec
        self.rng = rng if rng is not None else np.random.default_rng(spec.seed)
        self.n_listeners = spec.listeners

    def _programs(self, n: int) -> np.ndarray | str:
        ids = self.spec.program_ids
        return ids[0] if len(ids) == 1 else np.array(ids)[self.rng.integers(0, len(ids), n)]

    def listeners(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        s, rng, n = self.spec, self.rng, self.spec.listeners
        self.is_bot = rng.random(n) < 0.02
        self.activity = rng.lognormal(0.0, 0.9, n) * np.where(self.is_bot, 3.0, 1.0)
        self.engagement = np.clip(rng.beta(3.5, 2.3, n), 0, 1)
        bot_score, authentic, market, tz = _listener_traits(rng, self.is_bot, n)
        self.frequency = np.round(self.activity * 9.0 * (0.5 + self.engagement), 2)
        keys = np.log(GENRE_PRIOR)[None, :] + rng.gumbel(size=(n, len(GENRES)))
        self.top_genres = np.argsort(-keys, axis=1)[:, :3]
        weights = np.sort(rng.dirichlet([2.0, 1.2, 0.8], n), axis=1)[:, ::-1]
        self.taste = np.zeros((n, len(GENRES)))
        np.put_along_axis(self.taste, self.top_genres, weights, axis=1)
        self.activity_mean = self.activity.mean()
        listeners = pl.DataFrame({
            "listener_id": np.arange(1, n + 1), "marketplace": market, "time_zone": tz.astype(str),
            "opted_out": rng.random(n) < 0.10, "bot_score": np.round(bot_score, 4),
            "is_authentic": authentic, "engagement_score": np.round(self.engagement, 4),
            "listening_frequency": self.frequency, "voice_enabled": rng.random(n) < 0.25,
            "signup_date": _days(s.start_date, -rng.integers(30, 2000, n)),
        })
        affinity = pl.DataFrame({
            "listener_id": np.repeat(np.arange(1, n + 1), 3),
            "genre": np.array(GENRES)[self.top_genres.ravel()],
            "weight": np.round(weights.ravel(), 4),
        })
        return listeners, affinity

    def tracks(self) -> pl.DataFrame:
        s, rng, n = self.spec, self.rng, self.spec.tracks
        first = s.start_date - timedelta(days=30)
        span = (s.end_date - first).days + 1
        self.release_offset = rng.integers(0, span, n)  # days after `first`
        self.release_first = first
        self.genre = _weighted_pick(rng, GENRE_PRIOR, n)
        n_artists = max(n // 4, 1)
        artist_pop = rng.beta(1.5, 3.0, n_artists)
        self.artist = rng.integers(0, n_artists, n)
        self.artist_pop = artist_pop[self.artist]
        self.popularity = rng.pareto(1.3, n) + 0.05 + 2.0 * self.artist_pop
        self.eligible = rng.random(n) >= 0.12
        return pl.DataFrame({
            "track_id": np.arange(1, n + 1),
            "track_name": [f"Track {i}" for i in range(1, n + 1)],
            "genre": np.array(GENRES)[self.genre], "artist_id": self.artist + 1,
            "artist_popularity": np.round(self.artist_pop, 4),
            "release_date": _days(first, self.release_offset),
            "popularity": np.round(self.popularity / self.popularity.max(), 6),
            "feedback_eligible": self.eligible,
        })

    def plays(self, day: date, draws: tuple[int, int, int] | None = None
              ) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
        """Plays of one day, and the day's unique (listener, track) completions of new tracks.

        `draws` (a chunk's share of the day): completions, incomplete plays and plays of older tracks to
        draw; by default the whole day's."""
        rng = self.rng
        n = self.spec.plays_per_day if draws is None else draws[0]
        day_off = (day - self.release_first).days
        window = RELEASE_WINDOW_DAYS - 1
        new = np.flatnonzero((self.release_offset >= day_off - window) & (self.release_offset <= day_off))
        old = np.flatnonzero(self.release_offset < day_off - window)
        lst = _weighted_pick(rng, self.activity, n)
        trk = new[_weighted_pick(rng, self.popularity[new], n)]
        pair = np.unique(lst.astype(np.int64) * 10_000_000 + trk)
        p_lst, p_trk = pair // 10_000_000, pair % 10_000_000
        repeats = 1 + rng.poisson(0.36, len(pair))
        q_lst, q_trk = np.repeat(p_lst, repeats), np.repeat(p_trk, repeats)
        q_comp = rng.uniform(0.95, 1.0, len(q_lst))
        n_inc, n_old = (int(0.25 * n), int(0.15 * n) if len(old) else 0) if draws is None else draws[1:3]
        i_lst, i_trk = _weighted_pick(rng, self.activity, n_inc), new[_weighted_pick(rng, self.popularity[new], n_inc)]
        o_lst = _weighted_pick(rng, self.activity, n_old)
        o_trk = old[_weighted_pick(rng, self.popularity[old], n_old)] if n_old else np.array([], dtype=int)
        lst_all = np.concatenate([q_lst, i_lst, o_lst])
        trk_all = np.concatenate([q_trk, i_trk, o_trk])
        comp = np.concatenate([q_comp, rng.uniform(0.05, 0.949, n_inc), rng.uniform(0.95, 1.0, n_old)])
        m = len(lst_all)
        eng = self.engagement[lst_all].copy()
        listener_ids = (lst_all + 1 + self.offset).astype("float64")
        # A few malformed rows, as real feeds have: the batch must set them aside, not crash.
        n_bad = max(m // 2000, 3) if draws is None else m // 2000 + int(rng.random() < m % 2000 / 2000)
        bad = rng.choice(m, size=min(n_bad, m), replace=False)
        kind = rng.integers(0, 3, len(bad))
        eng[bad[kind == 0]] = np.nan
        comp[bad[kind == 1]] = 1.0 + rng.uniform(0.1, 0.5, int((kind == 1).sum()))
        listener_ids[bad[kind == 2]] = np.nan
        frame = pl.DataFrame({
            "listener_id": pl.Series(listener_ids).fill_nan(None).cast(pl.Int64),
            "track_id": trk_all + 1,
            "play_count": 1 + rng.poisson(0.3, m),
            "completion_rate": np.round(comp, 4),
            "engagement_score": pl.Series(np.round(eng, 4)).fill_nan(None),
            "playback_ms": (comp * rng.uniform(150_000, 260_000, m)).astype("int64"),
            "played_at": _ts(_epoch(day) + rng.integers(0, DAY_S, m)),
            "track_release_date": _days(self.release_first, self.release_offset[trk_all]),
            "genre": np.array(GENRES)[self.genre[trk_all]],
            "artist_id": self.artist[trk_all] + 1,
        })
        return frame, p_lst, p_trk

    def pair_feedback(self, day: date, p_lst: np.ndarray, p_trk: np.ndarray) -> pl.DataFrame:
        """Feedback some listeners already gave, before this day, on tracks they play again today."""
        rng = self.rng
        day_off = (day - self.release_first).days
        gave = (rng.random(len(p_lst)) < 0.17 * self.engagement[p_lst]) & (self.release_offset[p_trk] < day_off)
        lst, trk = p_lst[gave], p_trk[gave]
        rel = self.release_offset[trk]
        when = _epoch(self.release_first) + (rel + rng.random(len(trk)) * (day_off - rel)) * DAY_S
        return self._feedback_rows(lst, trk, when)

    def _feedback_rows(self, lst, trk, when) -> pl.DataFrame:
        rng = self.rng
        like = _sigmoid(0.4 + 1.5 * (self.artist_pop[trk] - 0.3) + 3.0 * (self.taste[lst, self.genre[trk]] - 0.2))
        return pl.DataFrame({
            "program_id": self._programs(len(lst)), "listener_id": lst + 1 + self.offset, "track_id": trk + 1,
            "channel": np.where(rng.random(len(lst)) < 0.75, "email", "voice-assistant"),
            "rating": np.where(rng.random(len(lst)) < like, 1, -1),
            "submitted_at": _ts(when.astype("int64")),
        })

    def background_feedback(self) -> pl.DataFrame:
        """Feedback of the last 90 days on older tracks: the listener history and artist ratings."""
        rng, s = self.rng, self.spec
        counts = rng.poisson(2.5 * self.engagement)
        lst = np.repeat(np.arange(self.n_listeners), counts)
        trk = rng.integers(0, s.tracks, len(lst))
        when = _epoch(s.start_date) - rng.integers(1, 90 * DAY_S, len(lst))
        return self._feedback_rows(lst, trk, when)

    def requests(self) -> pl.DataFrame:
        """Feedback requests already sent, from a week before the first day up to the last day."""
        rng, s = self.rng, self.spec
        span = s.days + 7
        rate = 1.1 * np.sqrt(self.activity / self.activity_mean) * span / 7
        counts = rng.poisson(rate)
        lst = np.repeat(np.arange(self.n_listeners), counts)
        when = _epoch(s.start_date - timedelta(days=7)) + rng.integers(0, span * DAY_S, len(lst))
        return pl.DataFrame({
            "program_id": self._programs(len(lst)), "listener_id": lst + 1 + self.offset,
            "track_id": rng.integers(1, s.tracks + 1, len(lst)),
            "channel": np.where(rng.random(len(lst)) < 0.75, "email", "voice-assistant"),
            "requested_at": _ts(when),
        })

    def outcomes(self, n: int | None = None) -> pl.DataFrame:
        """Past requests with the features seen then and what happened: the models' training data."""
        rng, s, n = self.rng, self.spec, self.spec.outcomes if n is None else n
        lst = _weighted_pick(rng, self.activity, n)
        trk = rng.integers(0, s.tracks, n)
        eng = np.clip(self.engagement[lst] + rng.normal(0, 0.03, n), 0, 1)
        hist = rng.poisson(2.5 * self.engagement[lst]).astype(float)
        taste = self.taste[lst, self.genre[trk]]
        freq = self.frequency[lst]
        apop = self.artist_pop[trk]
        similar = np.clip(_sigmoid(0.4 + 1.5 * (apop - 0.3)) + rng.normal(0, 0.05, n), 0, 1)
        genre_bias = np.linspace(0.5, -0.5, len(GENRES))[self.genre[trk]]
        p_resp = _sigmoid(-1.6 + 5.0 * (eng - 0.5) + 0.45 * np.log1p(hist) + 3.0 * taste)
        p_like = _sigmoid(-1.3 + 2.5 * genre_bias + 6.0 * (apop - 0.3) + 0.35 * np.log1p(freq) + 2.0 * taste)
        responded = rng.random(n) < p_resp
        liked = pl.Series(rng.random(n) < p_like).set(pl.Series(~responded), None)
        when = _epoch(s.start_date) - rng.integers(DAY_S, 60 * DAY_S, n)
        return pl.DataFrame({
            "program_id": self._programs(len(lst)), "listener_id": lst + 1 + self.offset, "track_id": trk + 1,
            "requested_at": _ts(when), "engagement_score": np.round(eng, 4), "feedback_history": hist,
            "music_taste_profile": np.round(taste, 4), "listening_frequency": freq,
            "genre": np.array(GENRES)[self.genre[trk]], "artist_popularity": np.round(apop, 4),
            "release_date": _days(self.release_first, self.release_offset[trk]),
            "similar_track_ratings": np.round(similar, 4), "responded": responded,
            "liked": liked,
        })


class _Chunk(_Generator):
    """Listeners `offset`..`offset + n - 1` (0-based) and every row that hangs off them alone.

    A chunk's listener attributes come from their own stream (seeded by the spec's seed and the chunk's
    index), its rows from a second one; the tracks are shared. Rows that pick listeners across the whole
    warehouse (the day's plays, the outcomes) are split between chunks by a multinomial draw on each
    chunk's summed activity, which gives each listener the same chance of each row as one pick over all."""

    def __init__(self, spec: WarehouseSpec, tracks: _Generator, index: int, offset: int, n: int,
                 activity_mean: float):
        super().__init__(spec, np.random.default_rng([spec.seed, 2, index]))
        self.offset, self.n_listeners, self.activity_mean = offset, n, activity_mean
        for name in ("release_offset", "release_first", "genre", "artist", "artist_pop", "popularity",
                     "eligible"):
            setattr(self, name, getattr(tracks, name))
        rng = np.random.default_rng([spec.seed, 1, index])
        self.is_bot, self.activity = _chunk_activity(rng, n)
        self.engagement = np.clip(rng.beta(3.5, 2.3, n), 0, 1)
        self.frequency = np.round(self.activity * 9.0 * (0.5 + self.engagement), 2)
        keys = np.log(GENRE_PRIOR)[None, :] + rng.gumbel(size=(n, len(GENRES)))
        self.top_genres = np.argsort(-keys, axis=1)[:, :3]
        del keys
        self.weights = np.sort(rng.dirichlet([2.0, 1.2, 0.8], n), axis=1)[:, ::-1]
        self.taste = np.zeros((n, len(GENRES)))
        np.put_along_axis(self.taste, self.top_genres, self.weights, axis=1)

    def listeners(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        s, rng, n = self.spec, self.rng, self.n_listeners
        bot_score, authentic, market, tz = _listener_traits(rng, self.is_bot, n)
        ids = np.arange(self.offset + 1, self.offset + n + 1)
        listeners = pl.DataFrame({
            "listener_id": ids, "marketplace": market, "time_zone": tz.astype(str),
            "opted_out": rng.random(n) < 0.10, "bot_score": np.round(bot_score, 4),
            "is_authentic": authentic, "engagement_score": np.round(self.engagement, 4),
            "listening_frequency": self.frequency, "voice_enabled": rng.random(n) < 0.25,
            "signup_date": _days(s.start_date, -rng.integers(30, 2000, n)),
        })
        affinity = pl.DataFrame({
            "listener_id": np.repeat(ids, 3),
            "genre": np.array(GENRES)[self.top_genres.ravel()],
            "weight": np.round(self.weights.ravel(), 4),
        })
        return listeners, affinity


def _chunk_activity(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A chunk's first draws: which listeners are bots and how much each plays (the plays' weights)."""
    is_bot = rng.random(n) < 0.02
    return is_bot, rng.lognormal(0.0, 0.9, n) * np.where(is_bot, 3.0, 1.0)


def _write(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame, append: bool = False) -> None:
    cols = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in TABLES[name].items())
    arrow = frame.to_arrow()  # noqa: F841 (read by DuckDB's replacement scan)
    if append:
        con.execute(f"INSERT INTO {name} SELECT {cols} FROM arrow")
    else:
        con.execute(f"CREATE TABLE {name} AS SELECT {cols} FROM arrow")


ONE_PIECE_LISTENERS = 1_000_000  # up to this many listeners: today's one-piece path, the same rows as ever
CHUNK_LISTENERS = 500_000  # above it: listeners per chunk (a chunk holds ~1 GB while it is generated)
DUCKDB_MEMORY_LIMIT = "1GB"  # DuckDB's own buffers while writing; it spills to `<path>.tmp.spill` past it


def generate(path: Path, spec: WarehouseSpec, progress: bool = True,
             chunk_listeners: int | None = None) -> dict[str, int]:
    """Write a new warehouse at `path` (atomically: a failure leaves any old one in place).

    With `chunk_listeners` unset, a warehouse of at most ONE_PIECE_LISTENERS listeners is drawn in one
    piece (the output of every earlier version for the same spec) and a bigger one in chunks of
    CHUNK_LISTENERS listeners; set, it is drawn in chunks of that many. Chunks hold the memory to what one
    chunk needs whatever the scale, and draw the same distributions (not the same rows) as one piece."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    spill, wal = path.with_name(path.name + ".tmp.spill"), path.with_name(path.name + ".tmp.wal")
    tmp.unlink(missing_ok=True)
    wal.unlink(missing_ok=True)  # a killed run's log would be replayed into the new file
    if chunk_listeners is None and spec.listeners > ONE_PIECE_LISTENERS:
        chunk_listeners = CHUNK_LISTENERS
    try:
        with duckdb.connect(str(tmp)) as con:
            con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
            con.execute("SET temp_directory = '" + str(spill).replace("'", "''") + "'")
            if chunk_listeners is None:
                gen = _Generator(spec)
                with tqdm(total=5 + 2 * spec.days, desc="warehouse", unit="step", disable=not progress) as steps:
                    _fill(con, gen, spec, steps)
            else:
                _fill_chunked(con, spec, max(int(chunk_listeners), 1), progress)
            _meta(con, spec)
            counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave half a warehouse behind
        wal.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    os.replace(tmp, path)
    return counts


def _meta(con: duckdb.DuckDBPyConnection, spec: WarehouseSpec) -> None:
    meta = {k: str(v) for k, v in asdict(spec).items()} | {
        "start_date": str(spec.start_date), "program_ids": ",".join(spec.program_ids)}
    con.execute("CREATE TABLE warehouse_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.executemany("INSERT INTO warehouse_meta VALUES (?, ?)", list(meta.items()))


def _fill(con: duckdb.DuckDBPyConnection, gen: _Generator, spec: WarehouseSpec, steps) -> None:
    listeners, affinity = gen.listeners()
    _write(con, "listeners", listeners)
    _write(con, "listener_genre_affinity", affinity)
    steps.update()
    _write(con, "tracks", gen.tracks())
    steps.update()
    _write(con, "feedback_history", gen.background_feedback())
    steps.update()
    for i in range(spec.days):
        day = spec.start_date + timedelta(days=i)
        plays, p_lst, p_trk = gen.plays(day)
        _write(con, "track_plays", plays, append=i > 0)
        steps.update()
        _write(con, "feedback_history", gen.pair_feedback(day, p_lst, p_trk), append=True)
        steps.update()
    _write(con, "feedback_requests", gen.requests())
    steps.update()
    _write(con, "feedback_outcomes", gen.outcomes())
    steps.update()


def _chunk_bounds(listeners: int, chunk_listeners: int) -> list[tuple[int, int]]:
    """(first listener index, count) of each chunk: as many chunks as it takes, of near-equal size."""
    k = -(-listeners // chunk_listeners)
    edges = np.linspace(0, listeners, k + 1).round().astype(int)
    return [(int(a), int(b - a)) for a, b in zip(edges[:-1], edges[1:])]


def _fill_chunked(con: duckdb.DuckDBPyConnection, spec: WarehouseSpec, chunk_listeners: int,
                  progress: bool) -> None:
    bounds = _chunk_bounds(spec.listeners, chunk_listeners)
    k = len(bounds)
    per_chunk = 5 + 2 * spec.days
    with tqdm(total=2 + k * per_chunk, desc="warehouse", unit="step", disable=not progress) as steps:
        steps.set_postfix_str(f"activity of {k} chunks")
        act = np.array([_chunk_activity(np.random.default_rng([spec.seed, 1, i]), n)[1].sum()
                        for i, (_, n) in enumerate(bounds)])
        share = act / act.sum()
        steps.update()
        shared = _Generator(spec, np.random.default_rng([spec.seed, 0]))
        _write(con, "tracks", shared.tracks())
        steps.update()
        split = shared.rng  # the draws that share the warehouse-wide rows between chunks
        window = RELEASE_WINDOW_DAYS - 1
        day_draws = []
        for i in range(spec.days):
            n = spec.plays_per_day
            day_off = (spec.start_date + timedelta(days=i) - shared.release_first).days
            has_old = bool((shared.release_offset < day_off - window).any())
            day_draws.append(np.stack([split.multinomial(n, share), split.multinomial(int(0.25 * n), share),
                                       split.multinomial(int(0.15 * n) if has_old else 0, share)], axis=1))
        outcomes = split.multinomial(spec.outcomes, share)
        created: set[str] = {"tracks"}
        rows = _chunk_rows(spec, bounds, shared, float(act.sum() / spec.listeners), day_draws, outcomes)
        for label, name, frame in _prefetched(rows, PREFETCH_FRAMES):
            steps.set_postfix_str(label, refresh=False)
            _write(con, name, frame, append=name in created)
            created.add(name)
            del frame
            steps.update()


def _chunk_rows(spec: WarehouseSpec, bounds: list[tuple[int, int]], shared: _Generator, activity_mean: float,
                day_draws: list[np.ndarray], outcomes: np.ndarray):
    """(progress label, table, frame) for every write of every chunk, in order."""
    for c, (offset, n) in enumerate(bounds):
        label = f"chunk {c + 1}/{len(bounds)} (listeners {offset + 1:,}..{offset + n:,})"
        gen = _Chunk(spec, shared, c, offset, n, activity_mean)
        listeners, affinity = gen.listeners()
        yield label, "listeners", listeners
        yield label, "listener_genre_affinity", affinity
        del listeners, affinity
        yield label, "feedback_history", gen.background_feedback()
        for i in range(spec.days):
            day = spec.start_date + timedelta(days=i)
            d = day_draws[i][c]
            plays, p_lst, p_trk = gen.plays(day, (int(d[0]), int(d[1]), int(d[2])))
            yield label, "track_plays", plays
            del plays
            yield label, "feedback_history", gen.pair_feedback(day, p_lst, p_trk)
        yield label, "feedback_requests", gen.requests()
        yield label, "feedback_outcomes", gen.outcomes(int(outcomes[c]))
        del gen


PREFETCH_FRAMES = 2  # frames drawn ahead while DuckDB writes: numpy and DuckDB both let go of the GIL


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def _prefetched(items, depth: int):
    """`items` drawn in a thread, at most `depth` ahead of the caller: the next chunk is drawn while DuckDB
    writes the last one (2 cores: ~1.5x faster than one after the other). An error in the thread is
    raised here; leaving early stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop, done = threading.Event(), object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as e:  # handed to the caller, which raises it
            put(_Failed(e))

    thread = threading.Thread(target=run, name="warehouse-chunks", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
            del item
    finally:
        stop.set()
        thread.join()


def _listener_traits(rng, is_bot, n: int):
    """Bot score, authenticity, marketplace and time zone of n listeners, drawn in this order (one order for
    the one-piece and the chunked paths, so a seed gives the same rows)."""
    bot_score = np.where(is_bot, rng.beta(8, 2, n), rng.beta(1, 18, n))
    authentic = ~(rng.random(n) < 0.015)
    markets = np.array(list(MARKETPLACE_SHARE))
    market = markets[_weighted_pick(rng, np.array(list(MARKETPLACE_SHARE.values())), n)]
    tz = np.empty(n, dtype=object)
    for m, zones in MARKETPLACE_TIMEZONES.items():
        idx = np.flatnonzero(market == m)
        tz[idx] = np.array(zones, dtype=object)[rng.integers(0, len(zones), len(idx))]
    return bot_score, authentic, market, tz
