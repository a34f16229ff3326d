"""The online service: the serving API and, later, the feedback, voice, tracking and unsubscribe routes."""
