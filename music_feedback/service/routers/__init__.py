"""One router per concern. create_app includes every module listed here (each exposes `router`)."""
ROUTERS = (
    "music_feedback.service.routers.health",
    "music_feedback.service.routers.candidates",
    "music_feedback.service.routers.feedback",
    "music_feedback.service.routers.tracking",
    "music_feedback.service.routers.unsubscribe",
    "music_feedback.service.routers.voice",
)
