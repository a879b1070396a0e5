"""Runtime configuration: one Settings object, read from BUTLER_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the product; built once in the app factory and passed down."""

    model_config = SettingsConfigDict(env_prefix="BUTLER_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite+aiosqlite:///./var/butler.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db",
    )
    db_pool_size: int = Field(
        20,
        ge=1,
        le=200,
        description="database connections per process, plus up to 5 in bursts (SQLite: a thread each)",
    )
    redis_url: str | None = Field(None, description="redis://host:6379/0 enables the Redis bus and limiter")
    secret_key: str = Field(
        "dev-insecure-change-me", description="signs session cookies and API tokens; set it in production"
    )
    host: str = Field("127.0.0.1", description="address the web server binds to")
    port: int = Field(8000, description="port the web server binds to")
    public_url: str | None = Field(None, description="public https URL; enables the Telegram webhook mode")
    default_locale: str = Field("zh-CN", description="locale for customers whose language is unknown")
    session_ttl_hours: int = Field(24 * 30, description="web chat session lifetime")
    api_token_ttl_hours: int = Field(12, description="staff API token lifetime")
    max_message_chars: int = Field(4096, description="longest accepted message body")
    db_group_commit: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="inbound messages (webhook updates, web chat posts) that may share one transaction "
        "when they arrive together; 1 = a transaction each; default 32 on SQLite, 16 on PostgreSQL",
    )
    db_group_commit_lanes: int | None = Field(
        None,
        ge=1,
        le=100,
        description="shared transactions that may run at once in a process (PostgreSQL overlaps their "
        "round trips); default 1 on SQLite, 2 on PostgreSQL",
    )
    outbox_max_attempts: int = Field(8, description="deliveries tried before an outbox row is dead")
    outbox_poll_seconds: float = Field(1.0, description="sender idle wake-up interval")
    run_workers: bool = Field(True, description="run the outbox sender and escalation worker in-process")
    telegram_token: str | None = Field(None, description="bot token from @BotFather; enables Telegram")
    telegram_api_base_url: str = Field(
        "https://api.telegram.org", description="Bot API root; the bot calls ROOT/bot<token>/<method>"
    )
    telegram_staff_chat_id: int | None = Field(None, description="staff supergroup (forum) chat id")
    telegram_webhook_secret: str | None = Field(None, description="X-Telegram-Bot-Api-Secret-Token value")
    telegram_mode: str = Field(
        "auto", description="auto (webhook if public_url is set, else polling), polling, or webhook"
    )
    telegram_overall_per_second: int = Field(30, description="bot-wide send limit (Telegram: 30/s)")
    telegram_chat_per_second: float = Field(1.0, description="sends per second into one chat (Telegram: 1)")
    telegram_group_per_minute: int = Field(20, description="sends per minute into one group (Telegram: 20)")
    media_dir: Path = Field(Path("./var/media"), description="where copies of customer and staff media go")
    media_max_bytes: int = Field(
        20 * 1024 * 1024, description="largest attachment accepted and copied; larger ones are refused"
    )
    sla_policies_file: Path | None = Field(None, description="YAML with SLA policies; default: shipped demo")
    kb_semantic: Literal["auto", "on", "off"] = Field(
        "auto", description="semantic model for FAQ matching: auto (if the extra is installed), on, off"
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto", description="event loop of every process: auto (uvloop if installed), uvloop, asyncio"
    )
    gc_young_threshold: int = Field(
        5000, ge=100, description="server processes: net allocations between young-generation collections"
    )
    loop_warn_ms: int = Field(
        250, ge=0, description="log where the event loop was when it was held longer than this (0: never)"
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR")
    log_format: Literal["text", "json"] = Field("text", description="text lines, or one JSON object per line")
    log_personal_data: bool = Field(
        False, description="keep phone numbers and e-mail addresses in logs (redacted by default)"
    )

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded default database."""
        return self.database_url.startswith("sqlite")
