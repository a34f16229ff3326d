"""Curated playlists per genre and marketplace, moved by listeners' feedback."""
