"""`[mqtt]`: how the station reaches the centre's broker (the sync issue extends this section)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    enabled: bool = Field(False, description="Sync with the centre over MQTT (off: a standalone station).")
    host: str = Field("127.0.0.1", min_length=1, max_length=253, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 for TLS by convention).")
    station_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="This station's id in topics; default: [station] station_id.",
    )
