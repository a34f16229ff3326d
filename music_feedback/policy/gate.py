"""The contact policy bound to its sources: the warehouse (opt-out, trust, earlier requests), the delivery
ledger of every channel and batch, suppressions, answers of every batch, and the holdout. Channels and
endpoints ask a `ContactGate`; they differ only by the channel they name and the time they pass."""
from __future__ import annotations

import polars as pl

from music_feedback.delivery.holdout import held_out, is_held_out
from music_feedback.feedback.port import FeedbackStore
from music_feedback.filters import build_chain
from music_feedback.policy.contact import ContactPolicy, cap_window, contact_signals, decide, policy_frame
from music_feedback.programs.model import Program
from music_feedback.warehouse.port import Warehouse

# Up to this many listeners the gate reads per listener (a voice prompt, one send chunk); above, in bulk.
FEW = 200


class ContactGate:
    def __init__(self, program: Program, warehouse: Warehouse, feedback: FeedbackStore):
        self.program, self.warehouse, self.feedback = program, warehouse, feedback
        self.policy = ContactPolicy.of_chain(build_chain(program.filter_chain))

    def check(self, pairs: pl.DataFrame, channel: str, at: float) -> pl.DataFrame:
        """`pairs` (listener_id, track_id, optionally `contacted`: the pair's own contact is already in the
        ledger, as for a repeated voice prompt), in the order they would be contacted at `at` on `channel`
        -> the same rows with `reason` (null: may contact) and `requests_in_week`."""
        pid = self.program.program_id
        listeners = pairs["listener_id"].unique().to_list()
        few = len(listeners) <= FEW
        since, until = cap_window(at)
        with self.warehouse.session():
            signals = contact_signals(self.warehouse, pid, (since, until), listeners if few else None)
        if few:
            contacts = pl.DataFrame({"listener_id": listeners,
                                     "requests": [self.feedback.contacts_of(pid, lid, since, until)
                                                  for lid in listeners]},
                                    schema={"listener_id": pl.Int64, "requests": pl.Int64})
            answered = pl.DataFrame([(lid, tid) for lid, tid in pairs.select("listener_id", "track_id").iter_rows()
                                     if self.feedback.feedback(pid, lid, tid) is not None],
                                    schema={"listener_id": pl.Int64, "track_id": pl.Int64}, orient="row")
        else:
            contacts = self.feedback.contacts(pid, since, until)
            answered = self.feedback.answered_pairs(pid, float("inf"))
        suppressed = list(self.feedback.suppressed(listeners))
        frame = policy_frame(pairs, signals, contacts).join(
            signals.select("listener_id", pl.col("prior_requests").alias("warehouse_requests")),
            on="listener_id", how="left", maintain_order="left")
        if "contacted" in pairs.columns:
            frame = frame.with_columns(pl.col("requests_in_week") - pairs["contacted"].cast(pl.Int64))
        frame = frame.with_columns(
            pl.col("listener_id").is_in(suppressed).alias("suppressed"),
            held_out(self.program, frame["listener_id"]).alias("held_out"),
            pl.struct("listener_id", "track_id").is_in(
                answered.select(pl.struct("listener_id", "track_id")).to_series().implode()).alias("answered"))
        return decide(frame, self.policy)

    def may_contact(self, listener_id: int, track_id: int, channel: str, at: float, contacted: bool = False
                    ) -> str | None:
        """None, or the reason code of the first rule that forbids asking now."""
        pair = pl.DataFrame({"listener_id": [listener_id], "track_id": [track_id], "contacted": [contacted]},
                            schema={"listener_id": pl.Int64, "track_id": pl.Int64, "contacted": pl.Boolean})
        return self.check(pair, channel, at)["reason"][0]

    def contact_now(self, row: dict, batch_date: str, channel: str, at: float, contacted: bool = False
                    ) -> str | None:
        """Decide and record one contact made at once (a voice prompt about the candidate `row`): None, or
        the reason it is refused. The cap is counted again inside the store's write of the contact, so two
        prompts at once cannot both take a listener's last place in the week."""
        pid, lid, tid = self.program.program_id, int(row["listener_id"]), int(row["track_id"])
        pair = pl.DataFrame({"listener_id": [lid], "track_id": [tid], "contacted": [contacted]},
                            schema={"listener_id": pl.Int64, "track_id": pl.Int64, "contacted": pl.Boolean})
        decided = self.check(pair, channel, at).row(0, named=True)
        if decided["reason"] == "held_out":
            self.feedback.record_contact(pid, batch_date, channel, row, "held_out", at)
        if decided["reason"] or contacted:
            return decided["reason"]
        room = self.policy.max_requests_per_week - (decided["warehouse_requests"] or 0)
        recorded = self.feedback.record_contact(pid, batch_date, channel, row, "sent", at,
                                                cap=(room, *cap_window(at)))
        return "over_weekly_cap" if recorded is None else None

    def may_answer(self, listener_id: int) -> str | None:
        """An answer from a held-out listener is refused. An unsubscribed one is refused by the feedback
        store inside the transaction that would store it (no second read here); the warehouse is not read
        per answer: a listener it opted out was not sent the request, which the sender checked then."""
        return "held_out" if is_held_out(self.program, listener_id) else None
