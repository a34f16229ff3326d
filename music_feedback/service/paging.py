"""Channel queries in pages: the cursor carries the position, the rows served so far and the per-track
cutoffs computed on the first page, all signed and bound to the query's parameters."""
from __future__ import annotations

from dataclasses import dataclass

from music_feedback.service.cursor import CursorError, fingerprint
from music_feedback.service.errors import ApiError
from music_feedback.store.base import ChannelQuery


@dataclass
class Page:
    items: list[bytes]  # each a JSON object (serving_item)
    next_cursor: str | None


def _key(value) -> tuple:
    score, listener, track, day = value
    if not (isinstance(score, (int, float)) and isinstance(listener, int) and isinstance(track, int)
            and isinstance(day, str)):
        raise CursorError("cursor is malformed")
    return (float(score), listener, track, day)


def channel_page(st, program: str, channel: str, min_score: float, limit: int, marketplace: str | None,
                 cursor: str | None) -> Page:
    q = ChannelQuery(program, channel, min_score, marketplace, st.config.max_per_track)
    fp = fingerprint(program, channel, min_score, limit, marketplace, st.config.max_per_track)
    if cursor is None:
        after, served, cutoffs = None, 0, st.store.track_cutoffs(q)
    else:
        try:
            s = st.signer.loads(fp, cursor)
            after, served = _key(s["a"]), int(s["n"])
            cutoffs = {int(t): _key(k) for t, k in s["c"]}
        except CursorError as exc:
            raise ApiError(422, f"cursor: {exc}", "cursor") from None
        except (KeyError, TypeError, ValueError):
            raise ApiError(422, "cursor: cursor is malformed", "cursor") from None
    size = min(st.config.page_size, limit - served)
    items, last = st.store.channel_page_json(q, after, size, cutoffs) if size > 0 else ([], None)
    served += len(items)
    more = len(items) == size and served < limit
    token = st.signer.dumps(fp, {"a": list(last), "n": served,
                                 "c": [[t, list(k)] for t, k in cutoffs.items()]}) if more else None
    return Page(items, token)
