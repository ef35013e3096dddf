"""Process settings from the environment (ACTIVATION_*); secrets never live here."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACTIVATION_", extra="ignore")

    project: str = "."  # directory holding syncs.yaml, or the file itself


def settings() -> Settings:
    return Settings()
