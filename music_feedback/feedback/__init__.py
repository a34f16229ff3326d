"""What listeners tell the program: the delivery ledger, their answers, feedback events, opt-outs and
tracking, behind one port (`FeedbackStore`), because an answer must update several of them at once."""
from music_feedback.feedback.port import (LEDGER_STATES, FeedbackStore, OptedOutError, Submission,
                                          SubmissionConflict, SubmitResult)

__all__ = ["LEDGER_STATES", "FeedbackStore", "OptedOutError", "Submission", "SubmissionConflict", "SubmitResult"]
