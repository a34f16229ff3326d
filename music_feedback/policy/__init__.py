"""Contact policy: rules about whom we may contact at all, which no program configuration can switch off."""
from music_feedback.policy.contact import (POLICY_FILTER_KINDS, ContactPolicy, contact_signals,
                                           policy_violations)

__all__ = ["POLICY_FILTER_KINDS", "ContactPolicy", "contact_signals", "policy_violations"]
