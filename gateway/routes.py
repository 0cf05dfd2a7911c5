"""Provider webhooks (mounted by core.app)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
