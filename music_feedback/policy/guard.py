"""The filter stage's guard as SQL: the kept pairs against contact signals read afresh where the data lives."""
from __future__ import annotations

from datetime import date

from music_feedback.policy.contact import ContactPolicy, batch_window
from music_feedback.warehouse.queries import listeners_between, recent_request_counts_sql

GUARD_STATS = ("null_keys", "unknown_or_untrusted", "opted_out", "over_weekly_cap")


def guard_sql(kept: str, policy: ContactPolicy, program_id: str, day: date,
              listeners: tuple[int | None, int | None] = (None, None)) -> str:
    """The kept pairs (`kept`: listener_id, track_id) joined to contact signals read afresh from the warehouse
    and the program's own ledger (the session's own_* tables), counted by what contact policy forbids:
    always all of it, whatever the chain enables, so no program can configure it away. A listener's
    requests in the week are the prior ones plus each of the day's kept pairs. `kept` may be a range of
    listeners: `listeners` (lo, hi) then restricts the listeners and their request counts to the range."""
    since, until = batch_window(day)
    requests = listeners_between(f"({recent_request_counts_sql(program_id, since, until)})", *listeners)
    return f"""
        SELECT SUM(CASE WHEN listener_id IS NULL OR track_id IS NULL THEN 1 ELSE 0 END) AS null_keys,
               SUM(CASE WHEN bot_score IS NULL OR bot_score >= {policy.max_bot_score!r}
                         OR NOT COALESCE(is_authentic, FALSE) THEN 1 ELSE 0 END) AS unknown_or_untrusted,
               SUM(CASE WHEN COALESCE(opted_out, TRUE) OR suppressed THEN 1 ELSE 0 END) AS opted_out,
               SUM(CASE WHEN prior + position > {int(policy.max_requests_per_week)} THEN 1 ELSE 0 END)
                   AS over_weekly_cap
        FROM (SELECT k.listener_id, k.track_id, l.bot_score, l.is_authentic, l.opted_out,
                     s.listener_id IS NOT NULL AS suppressed,
                     COALESCE(r.prior_requests, 0) + COALESCE(o.requests, 0) AS prior,
                     ROW_NUMBER() OVER (PARTITION BY k.listener_id ORDER BY k.track_id) AS position
              FROM {kept} k
              LEFT JOIN {listeners_between('listeners', *listeners)} l ON l.listener_id = k.listener_id
              LEFT JOIN (SELECT DISTINCT listener_id FROM own_suppressed) s ON s.listener_id = k.listener_id
              LEFT JOIN {requests} r ON r.listener_id = k.listener_id
              LEFT JOIN (SELECT listener_id, SUM(requests) AS requests FROM own_contacts GROUP BY listener_id) o
                     ON o.listener_id = k.listener_id) g"""
