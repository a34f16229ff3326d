"""One router per concern. create_app includes every module listed here (each exposes `router`)."""
ROUTERS = (
    "music_feedback.service.routers.health",
    "music_feedback.service.routers.candidates",
)
