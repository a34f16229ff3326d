"""The resources every definition is given: the adapter set MUSIC_FEEDBACK_ENV picks (local by default)."""
from dagster import Definitions, definitions

from music_feedback.resources import get_resources


@definitions
def defs() -> Definitions:
    return Definitions(resources=get_resources(env_vars=True))
