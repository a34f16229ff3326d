"""The events relay: the feedback outbox published to the event bus every five minutes, for every program
at once (module-level definitions, found with the tree)."""
