"""`[api]`: where the local API and installer page listen (the API issue extends this section)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    enabled: bool = Field(False, description="Serve the local API and installer page inside `yizhan run`.")
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        max_length=253,
        description="Bind address (the station's LAN address on site).",
    )
    port: int = Field(8080, ge=1, le=65535, description="TCP port.")
