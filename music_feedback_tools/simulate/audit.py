"""An outside audit of the contact promises, read from the stores themselves.

It never asks the contact policy module: it re-derives every promise from what was recorded (the delivery
ledger of every channel and batch, the answers, the suppressions, the warehouse's opt-outs and earlier
requests, the holdout and the delivered messages), so a policy that is wrong and agrees with itself is
still caught. The rules, each counted with examples:

- over_weekly_cap: listeners with more than the cap of contacts in some window (t - 7 days, t] ending at
  one of the program's own contacts, over every channel, the warehouse's earlier requests included;
- after_opt_out: contacts (and stored answers) of a listener after their unsubscribe, or of one the
  warehouse marks opted out;
- asked_after_answer: pairs contacted again, on any channel and batch, after the pair was answered here;
- held_out: contacts or stored answers of held-out listeners;
- messages: sent email ledger rows without exactly one delivered message, and messages without one;
- off_clock: stamps outside the simulated sessions (or the simulated days) they must come from: a time
  taken from the wall clock instead of the day's clock hides contacts from the windows above.
"""
from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl

from music_feedback import settings
from music_feedback.delivery.email.maildir import file_name
from music_feedback.delivery.email.render import message_id
from music_feedback.delivery.holdout import is_held_out
from music_feedback.programs.model import Program
from music_feedback.warehouse.port import Warehouse, timestamp_literal

RULES = ("over_weekly_cap", "after_opt_out", "asked_after_answer", "held_out", "messages", "off_clock")
WEEK_S = 7 * 86_400
CONTACT_STATES = ("sending", "sent")  # may have reached the listener: they count as contacts
DEFAULT_CAP = 2


def weekly_cap(program: Program) -> int:
    """The program's maxRequestsPerWeek, read from its configuration (the default when not set)."""
    for spec in program.filter_chain:
        if spec.kind == "frequency-cap" and "maxRequestsPerWeek" in spec.parameters:
            return int(spec.parameters["maxRequestsPerWeek"])
    return DEFAULT_CAP


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


# --- reading the stores ---------------------------------------------------------------------------------
def read_feedback_store(feedback, program_id: str) -> dict[str, pl.DataFrame]:
    """The ledger, answers and suppressions of the embedded store, read in one read-only snapshot (its port
    has no read of contact times per pair, nor of when a listener unsubscribed)."""
    path = getattr(feedback, "path", None)
    if path is None:
        raise TypeError(f"the audit reads the embedded feedback store; {type(feedback).__name__} has no file")
    if not Path(path).exists():
        raise FileNotFoundError(f"no feedback store at {path}: run a day first")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("BEGIN")  # one snapshot for the three tables

        def frame(sql: str, schema: dict) -> pl.DataFrame:
            return pl.DataFrame(conn.execute(sql, (program_id,) if "?" in sql else ()).fetchall(),
                                schema=schema, orient="row")

        ledger = frame("SELECT batch_date, listener_id, track_id, channel, state, marketplace, contacted_at "
                       "FROM delivery_ledger WHERE program_id = ?",
                       {"batch_date": pl.Utf8, "listener_id": pl.Int64, "track_id": pl.Int64, "channel": pl.Utf8,
                        "state": pl.Utf8, "marketplace": pl.Utf8, "contacted_at": pl.Float64})
        answers = frame("SELECT listener_id, track_id, channel, batch_date, first_submitted_at, submitted_at "
                        "FROM feedback WHERE program_id = ?",
                        {"listener_id": pl.Int64, "track_id": pl.Int64, "channel": pl.Utf8, "batch_date": pl.Utf8,
                         "first_submitted_at": pl.Float64, "submitted_at": pl.Float64})
        suppressions = frame("SELECT listener_id, reason, created_at FROM suppressions",
                             {"listener_id": pl.Int64, "reason": pl.Utf8, "created_at": pl.Float64})
    finally:
        conn.close()
    return {"ledger": ledger, "answers": answers, "suppressions": suppressions}


def read_warehouse(wh: Warehouse, program_id: str, since: float, until: float) -> dict[str, pl.DataFrame]:
    """Opted-out listeners, and the program's requests in [since, until]. (Its earlier answers are left to
    the batch: the generated history also holds answers dated after the days it feeds.)"""
    pid = program_id.replace("'", "''")
    opted = wh.fetch("SELECT listener_id FROM listeners WHERE opted_out")
    requests = wh.fetch(f"SELECT listener_id, track_id, channel, requested_at FROM feedback_requests "
                        f"WHERE program_id = '{pid}' AND requested_at >= {timestamp_literal(since)} "
                        f"AND requested_at <= {timestamp_literal(until)}")

    def epoch(col: str) -> pl.Expr:  # the warehouse's timestamps have no zone: they are UTC
        return pl.col(col).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").dt.epoch("us").cast(pl.Float64) / 1e6

    return {
        "opted_out": opted.select(pl.col("listener_id").cast(pl.Int64)),
        "requests": requests.select(pl.col("listener_id").cast(pl.Int64), pl.col("track_id").cast(pl.Int64),
                                    pl.col("channel").cast(pl.Utf8), epoch("requested_at").alias("t")),
    }


def outbox_names(folder: Path) -> Counter:
    """Delivered message files by name (new/ and cur/, where a mail client moves read ones with a flag
    suffix); tmp/ holds writes that never completed, which are not messages."""
    names: Counter = Counter()
    for sub in ("new", "cur"):
        if (folder / sub).is_dir():
            names.update(p.name.split(":")[0] for p in (folder / sub).iterdir())
    return names


# --- the rules -------------------------------------------------------------------------------------------
def _rule(violations: int, examples: list, **extra) -> dict:
    return {"violations": int(violations), "examples": examples, **extra}


def _contact_rows(df: pl.DataFrame, n: int) -> list[dict]:
    cols = [c for c in ("listener_id", "track_id", "channel", "batch_date", "state", "source") if c in df.columns]
    return [{**{c: r[c] for c in cols}, "at": _iso(r["t"])} for r in df.head(n).iter_rows(named=True)]


def over_cap(contacts: pl.DataFrame, requests: pl.DataFrame, cap: int, n: int) -> dict:
    """Every window (t - 7 days, t] ending at one of our contacts, counting our contacts and the
    warehouse's requests alike; a window ending at a warehouse request is not ours to answer for."""
    ours = contacts.select("listener_id", "track_id", "channel", "batch_date", "t", pl.lit("ledger").alias("source"))
    theirs = requests.join(ours.select("listener_id").unique(), on="listener_id", how="semi").select(
        "listener_id", "track_id", "channel", pl.lit(None, pl.Utf8).alias("batch_date"), "t",
        pl.lit("warehouse").alias("source"))
    every = pl.concat([ours, theirs]).with_columns((pl.col("t") * 1e6).round().cast(pl.Int64).alias("t_us"))
    every = every.sort("listener_id", "t_us")
    windows = every.rolling(index_column="t_us", period=f"{WEEK_S * 1_000_000}i", closed="right",
                            group_by="listener_id").agg(pl.len().alias("in_window"))
    # one window per row, in the sorted frame's order (checked: the result is joined by position)
    assert windows["listener_id"].equals(every["listener_id"]) and windows["t_us"].equals(every["t_us"])
    every = every.with_columns(windows["in_window"])
    over = every.filter((pl.col("source") == "ledger") & (pl.col("in_window") > cap))
    listeners = over["listener_id"].unique().sort()
    examples, mixed = [], 0
    for lid in listeners.to_list():
        end = (over.filter(pl.col("listener_id") == lid).sort("in_window", "t", descending=[True, False])
               .row(0, named=True))
        window = every.filter((pl.col("listener_id") == lid) & (pl.col("t") > end["t"] - WEEK_S)
                              & (pl.col("t") <= end["t"]))
        mixed += window.filter(pl.col("source") == "ledger")["channel"].n_unique() > 1
        if len(examples) < n:
            examples.append({"listener_id": lid, "contacts_in_window": int(end["in_window"]),
                             "window": _contact_rows(window, 8)})
    return _rule(listeners.len(), examples, cap=cap, windows_over=over.height,
                 listeners_examined=ours["listener_id"].n_unique(), warehouse_requests=theirs.height,
                 listeners_over_with_mixed_channels=mixed)


def after_opt_out(contacts: pl.DataFrame, answers: pl.DataFrame, suppressions: pl.DataFrame,
                  opted_out: pl.DataFrame, n: int) -> dict:
    since = pl.concat([suppressions.select("listener_id", pl.col("created_at").alias("since"),
                                           pl.col("reason").alias("why")),
                       opted_out.select("listener_id", pl.lit(float("-inf")).alias("since"),
                                        pl.lit("opted out in the warehouse").alias("why"))])
    since = since.group_by("listener_id").agg(pl.all().sort_by("since").first())
    late = contacts.join(since, on="listener_id").filter(pl.col("t") > pl.col("since"))
    late_answers = (answers.rename({"first_submitted_at": "t"}).join(since, on="listener_id")
                    .filter(pl.col("t") > pl.col("since")))
    examples = [{**c, "opted_out_at": _iso(s) if s != float("-inf") else "warehouse", "why": w}
                for c, s, w in zip(_contact_rows(late, n), late["since"].head(n), late["why"].head(n))]
    examples += [{"answer": True, **a} for a in _contact_rows(late_answers, max(n - len(examples), 0))]
    return _rule(late.height + late_answers.height, examples, contacts=late.height, answers=late_answers.height,
                 suppressed_listeners=suppressions.height)


def asked_after_answer(contacts: pl.DataFrame, answers: pl.DataFrame, n: int) -> dict:
    answered = answers.select("listener_id", "track_id", pl.col("first_submitted_at").alias("answered_at"),
                              pl.col("channel").alias("answered_on"), pl.col("batch_date").alias("answered_batch"))
    again = (contacts.join(answered, on=["listener_id", "track_id"]).filter(pl.col("t") > pl.col("answered_at"))
             .sort("listener_id", "track_id", "t"))
    pairs = again.select("listener_id", "track_id").unique()
    examples = [{**c, "answered_at": _iso(r["answered_at"]), "answered_on": r["answered_on"],
                 "answered_batch": r["answered_batch"]}
                for c, r in zip(_contact_rows(again, n), again.head(n).iter_rows(named=True))]
    return _rule(pairs.height, examples, contacts=again.height, answered_pairs=answered.height)


def held_out(program: Program, contacts: pl.DataFrame, answers: pl.DataFrame, n: int) -> dict:
    ids = set(contacts["listener_id"].unique().to_list()) | set(answers["listener_id"].unique().to_list())
    held = [lid for lid in ids if is_held_out(program, lid)]
    asked = contacts.filter(pl.col("listener_id").is_in(held))
    stored = answers.filter(pl.col("listener_id").is_in(held)).rename({"first_submitted_at": "t"})
    examples = _contact_rows(asked, n) + [{"answer": True, **a} for a in _contact_rows(stored, n)]
    return _rule(asked.height + stored.height, examples[:n], contacts=asked.height, answers=stored.height)


def messages(program: Program, ledger: pl.DataFrame, folder: Path, n: int) -> dict:
    email = program.channel("email")
    if email is None or not (folder / "new").is_dir():
        return _rule(0, [], checked=False, why="no local outbox: the messages are with the mail service")
    domain = email.typed_config().from_address.rsplit("@", 1)[-1].rstrip(">").strip() or "localhost"
    sent = ledger.filter((pl.col("channel") == email.channel_id) & (pl.col("state") == "sent"))
    expected = {file_name(message_id(program.program_id, b, lid, tid, ch, domain)): (b, lid, tid)
                for b, lid, tid, ch in sent.select("batch_date", "listener_id", "track_id", "channel").iter_rows()}
    found = outbox_names(folder)
    lost = [k for k in expected if found.get(k, 0) == 0]
    doubled = [k for k in expected if found.get(k, 0) > 1]
    orphans = [k for k in found if k not in expected]
    examples = ([{"missing": True, "batch_date": expected[k][0], "listener_id": expected[k][1],
                  "track_id": expected[k][2]} for k in lost[:n]]
                + [{"copies": found[k], "batch_date": expected[k][0], "listener_id": expected[k][1],
                    "track_id": expected[k][2]} for k in doubled[:n]]
                + [{"no_sent_row": True, "file": k} for k in orphans[:n]])
    return _rule(len(lost) + len(doubled) + len(orphans), examples[:n], checked=True, sent_rows=len(expected),
                 messages=sum(found.values()), lost=len(lost), duplicated=len(doubled), without_sent_row=len(orphans))


def off_clock(stamps: pl.DataFrame, sessions: list[tuple[float, float]] | None, days: list[date] | None,
              n: int) -> dict:
    """Each stamp must fall in one of the sessions the product ran in on a simulated clock (or, without
    them, within the simulated days: from the first batch day to the end of the day after the last)."""
    if sessions:
        bounds = sorted(sessions)
    elif days:
        first = datetime.combine(min(days), datetime.min.time(), timezone.utc).timestamp()
        last = datetime.combine(max(days) + timedelta(days=2), datetime.min.time(), timezone.utc).timestamp()
        bounds = [(first, last)]
    else:
        return _rule(0, [], checked=False)
    starts = pl.Series([b[0] for b in bounds], dtype=pl.Float64)
    ends = pl.Series([b[1] for b in bounds], dtype=pl.Float64)
    inside = pl.lit(False)
    for s, e in zip(starts, ends):
        inside = inside | ((pl.col("t") >= s) & (pl.col("t") <= e))
    bad = stamps.filter(pl.col("t").is_null() | ~inside)
    examples = [{**{k: r[k] for k in ("what", "listener_id", "track_id", "channel", "batch_date")},
                 "at": _iso(r["t"])} for r in bad.head(n).iter_rows(named=True)]
    return _rule(bad.height, examples, checked=True, stamps=stamps.height,
                 by_kind=dict(Counter(bad["what"].to_list())))


# --- the audit -------------------------------------------------------------------------------------------
def audit(program: Program, days: list[date] | None = None, *, feedback=None, warehouse: Warehouse | None = None,
          outbox: Path | None = None, sessions: list[tuple[float, float]] | None = None, examples: int = 5) -> dict:
    """Audit the data home's stores for `program`. `days`: the batch days simulated (default: every batch
    day in the ledger); `sessions`: the simulated-time intervals in which the product ran."""
    if feedback is None:
        from music_feedback.resources import feedback_store
        feedback = feedback_store()
    if warehouse is None:
        from music_feedback.resources import get_resources
        warehouse = get_resources()["warehouse"]
    store = read_feedback_store(feedback, program.program_id)
    ledger, answers, suppressions = store["ledger"], store["answers"], store["suppressions"]
    contacts = ledger.filter(pl.col("state").is_in(CONTACT_STATES)).rename({"contacted_at": "t"})
    stamped = contacts.filter(pl.col("t").is_not_null())
    if stamped.height:
        since, until = stamped["t"].min() - WEEK_S, stamped["t"].max()
    else:
        since = until = 0.0
    wh = read_warehouse(warehouse, program.program_id, since, until)
    stamps = pl.concat([
        contacts.select(pl.lit("contact").alias("what"), "listener_id", "track_id", "channel", "batch_date", "t"),
        answers.select(pl.lit("answer").alias("what"), "listener_id", "track_id", "channel", "batch_date",
                       pl.col("first_submitted_at").alias("t")),
        suppressions.select(pl.lit("unsubscribe").alias("what"), "listener_id",
                            pl.lit(None, pl.Int64).alias("track_id"),
                            pl.lit(None, pl.Utf8).alias("channel"), pl.lit(None, pl.Utf8).alias("batch_date"),
                            pl.col("created_at").alias("t")),
    ])
    rules = {
        "over_weekly_cap": over_cap(stamped, wh["requests"], weekly_cap(program), examples),
        "after_opt_out": after_opt_out(stamped, answers, suppressions, wh["opted_out"], examples),
        "asked_after_answer": asked_after_answer(stamped, answers, examples),
        "held_out": held_out(program, contacts, answers, examples),
        "messages": messages(program, ledger, outbox or settings.outbox_dir(), examples),
        "off_clock": off_clock(stamps, sessions, days, examples),
    }
    batch_days = days or sorted({date.fromisoformat(d) for d in ledger["batch_date"].unique().to_list()})
    return {
        "policy_days": len(batch_days),
        "policy_contacts_examined": contacts.height,
        "policy_violations": sum(r["violations"] for r in rules.values()),
        "contacts_by_channel": dict(Counter(contacts["channel"].to_list())),
        "answers": answers.height,
        "unsubscribed": suppressions.height,
        "rules": rules,
    }


def summary(report: dict) -> str:
    """One line per rule, for a terminal."""
    lines = [f"audit of {report['policy_days']} day(s): {report['policy_contacts_examined']:,} contacts "
             f"{report['contacts_by_channel']}, {report['answers']:,} answers, {report['unsubscribed']:,} "
             f"unsubscribed; {report['policy_violations']:,} violation(s)"]
    for name, rule in report["rules"].items():
        mark = "not checked" if rule.get("checked") is False else f"{rule['violations']:,}"
        lines.append(f"  {name:<20} {mark}" + (f"  e.g. {rule['examples'][0]}" if rule["examples"] else ""))
    return "\n".join(lines)
