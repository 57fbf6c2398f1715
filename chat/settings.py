"""Settings: every knob of the server, read once from `CHAT_*` environment variables.

A bad value raises `SettingsError` naming the variable, so the server refuses to start
instead of running with a surprise.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = PROJECT_ROOT / "instance"
SECRET_KEY_FILE = "secret_key"


class SettingsError(ValueError):
    """A setting has a value the server cannot run with."""


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` events per `seconds`; `None` in a setting means the limit is off."""

    count: int
    seconds: int


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = ""
    secret_key: str = ""
    code_length: int = 4
    room_capacity: int = 100
    empty_room_ttl: float = 900.0
    leave_grace: float = 5.0
    page_size: int = 50
    message_max: int = 2000
    send_queue: int = 256
    message_rate: Rate | None = field(default_factory=lambda: Rate(30, 10))
    join_fail_rate: Rate | None = field(default_factory=lambda: Rate(10, 60))
    create_rate: Rate | None = field(default_factory=lambda: Rate(10, 60))
    broker_url: str = ""
    sockets_per_user: int = 10
    sockets_per_address: int | None = 200
    proxy_hops: int = 0
    ws_compression: str = "off"
    instance_path: Path = DEFAULT_INSTANCE

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file named by `database_url`, or None for another kind of store."""
        url = self.database_url or f"sqlite:///{self.instance_path / 'chat.db'}"
        if not url.startswith("sqlite:///"):
            return None
        path = Path(url.removeprefix("sqlite:///"))
        return path if path.is_absolute() else Path.cwd() / path

    @property
    def ws_frame_max(self) -> int:
        """Largest WebSocket frame worth reading: a full message with every character
        JSON-escaped as a surrogate pair (12 characters), plus the headers htmx adds."""
        return self.message_max * 12 + 4096


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 <= value < float("inf"):
        raise SettingsError(f"{name} must be zero or more seconds, got {raw!r}")
    return value


def _rate(env: Mapping[str, str], name: str, default: Rate | None) -> Rate | None:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw == "off":
        return None
    count, _, seconds = raw.partition("/")
    try:
        rate = Rate(int(count), int(seconds))
    except ValueError:
        raise SettingsError(f"{name} must be COUNT/SECONDS or 'off', got {raw!r}") from None
    if rate.count < 1 or rate.seconds < 1:
        raise SettingsError(f"{name} needs a positive count and window, got {raw!r}")
    return rate


def _count_or_off(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "").strip().lower()
    if raw == "off":
        return None
    return _integer(env, name, 0, minimum=1) if raw else default


def _database_url(env: Mapping[str, str]) -> str:
    url = env.get("CHAT_DATABASE_URL", "").strip()
    if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise SettingsError(
            "CHAT_DATABASE_URL must start with sqlite:///, postgresql:// or postgres://, "
            f"got {url!r}"
        )
    return url


def _broker_url(env: Mapping[str, str]) -> str:
    url = env.get("CHAT_BROKER_URL", "").strip()
    if url and not url.startswith(("redis://", "rediss://")):
        raise SettingsError(f"CHAT_BROKER_URL must be a redis:// URL, got {url!r}")
    return url


def _ws_compression(env: Mapping[str, str]) -> str:
    raw = env.get("CHAT_WS_COMPRESSION", "").strip().lower() or "off"
    if raw not in ("off", "small", "default"):
        raise SettingsError(f"CHAT_WS_COMPRESSION must be off, small or default, got {raw!r}")
    return raw


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from `env` (the process environment by default); `overrides`
    replace fields after reading, which is how tests pick their own values."""
    env = os.environ if env is None else env
    settings = Settings(
        database_url=_database_url(env),
        secret_key=env.get("CHAT_SECRET_KEY", "").strip(),
        code_length=_integer(env, "CHAT_CODE_LENGTH", 4, minimum=3),
        room_capacity=_integer(env, "CHAT_ROOM_CAPACITY", 100, minimum=1),
        empty_room_ttl=_seconds(env, "CHAT_EMPTY_ROOM_TTL", 900.0),
        leave_grace=_seconds(env, "CHAT_LEAVE_GRACE", 5.0),
        page_size=_integer(env, "CHAT_PAGE_SIZE", 50, minimum=1),
        message_max=_integer(env, "CHAT_MESSAGE_MAX", 2000, minimum=1),
        send_queue=_integer(env, "CHAT_SEND_QUEUE", 256, minimum=1),
        message_rate=_rate(env, "CHAT_MESSAGE_RATE", Rate(30, 10)),
        join_fail_rate=_rate(env, "CHAT_JOIN_FAIL_RATE", Rate(10, 60)),
        create_rate=_rate(env, "CHAT_CREATE_RATE", Rate(10, 60)),
        broker_url=_broker_url(env),
        sockets_per_user=_integer(env, "CHAT_SOCKETS_PER_USER", 10, minimum=1),
        sockets_per_address=_count_or_off(env, "CHAT_SOCKETS_PER_ADDRESS", 200),
        proxy_hops=_integer(env, "CHAT_PROXY_HOPS", 0, minimum=0),
        ws_compression=_ws_compression(env),
    )
    return Settings(**{**_as_dict(settings), **overrides})


def _as_dict(settings: Settings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in Settings.__slots__}


def resolve_secret_key(settings: Settings) -> str:
    """The configured key, or one generated on first start and kept (mode 0600) beside
    the database so sessions survive restarts."""
    if settings.secret_key:
        return settings.secret_key
    db_path = settings.sqlite_path
    folder = db_path.parent if db_path else settings.instance_path
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / SECRET_KEY_FILE
    if not key_file.exists():
        # Written aside and linked into place so that workers starting together agree
        # on one key and none reads a half-written file.
        draft = folder / f".{SECRET_KEY_FILE}.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, key_file)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return key_file.read_text().strip()
