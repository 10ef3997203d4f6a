"""A node's alert settings (the `alerts` section of its config)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AlertSettings(BaseModel):
    poll_s: float = Field(0.5, gt=0, description="how often the watcher looks for new blocks")
    webhook_attempts: int = Field(8, ge=1, description="attempts before a delivery is parked")
    webhook_backoff_s: float = Field(
        2.0, gt=0, description="first retry delay; doubled on each further failure"
    )
    webhook_max_backoff_s: float = Field(600.0, gt=0)
    webhook_timeout_s: float = Field(5.0, gt=0)
