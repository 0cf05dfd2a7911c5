"""The operations console (server-rendered pages) and the JSON API under /api/v1."""
