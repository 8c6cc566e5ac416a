"""Configuration: read from the environment once, validated, typed and frozen."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Everything Flipper reads from its environment.

    Frozen: a value cannot change after start, so every request sees the same configuration.
    """

    redis_url: str | None = dataclasses.field(default=None, repr=False)  # it may hold a password
    key_prefix: str = ""
    connect_timeout: float = 0.25
    command_timeout: float = 0.5
    redis_idle_reconnect: float = 30.0  # seconds a pooled connection may sit unused before it is replaced
    retry_after: int = 1
    log_level: str = "INFO"
    max_id_length: int = 256
    max_groups: int = 32
    max_attributes: int = 32  # a caller's attributes for targeting rules, in one request
    max_query_length: int = 8192
    max_body_length: int = 8192
    body_timeout: float = 10.0  # seconds to receive a whole OFREP body
    # Lambda returns at most 6 MB (6,291,456 bytes), envelope and JSON escaping of the body included.
    max_response_bytes: int = 5_000_000
    cache_control: str = "no-cache"  # clients may store answers but must revalidate them (ETag) before use
    cors_origins: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    api_keys_secret_arn: str | None = None
    redis_cluster: bool = False
    redis_password_secret_arn: str | None = None
    # The instance's revision-validated cache (flipper.core.cache): 0 turns it off, so that a raw redis-cli write
    # is seen at once (make dev-server); template.yaml sets a production value.
    cache_max_age: float = 0.0
    cache_max_bytes: int = 16 * 1024 * 1024
    audit_length: int = 10_000  # the audit stream's MAXLEN ~: the entries history and undo can reach
    # Usage counts (flipper.core.usage): recorded per instance, flushed to Redis at most every so many seconds.
    usage: bool = True
    usage_flush_seconds: float = 60.0
    usage_max_features: int = 10_000  # fields the usage hashes may hold: what any caller's names can make them grow to

    def __post_init__(self) -> None:
        if self.redis_cluster and not has_hash_tag(self.key_prefix):
            raise SettingsError(
                f"FLIPPER_KEY_PREFIX={self.key_prefix!r} has no hash tag such as '{{flipper}}:', but "
                "FLIPPER_REDIS_CLUSTER is on: in a cluster every key one script call reads must hash to the same slot"
            )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse and validate `environ` (default: `os.environ`); raise SettingsError naming the culprit."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            redis_url=_read(env, "REDIS_URL", _redis_url, defaults.redis_url, show=without_password),
            key_prefix=env.get("FLIPPER_KEY_PREFIX", defaults.key_prefix),
            connect_timeout=_read(env, "FLIPPER_CONNECT_TIMEOUT", _positive(float), defaults.connect_timeout),
            command_timeout=_read(env, "FLIPPER_COMMAND_TIMEOUT", _positive(float), defaults.command_timeout),
            redis_idle_reconnect=_read(
                env, "FLIPPER_REDIS_IDLE_RECONNECT", _positive(float), defaults.redis_idle_reconnect
            ),
            retry_after=_read(env, "FLIPPER_RETRY_AFTER", _positive(int), defaults.retry_after),
            log_level=_read(env, "LOG_LEVEL", _log_level, defaults.log_level),
            max_id_length=_read(env, "FLIPPER_MAX_ID_LENGTH", _positive(int), defaults.max_id_length),
            max_groups=_read(env, "FLIPPER_MAX_GROUPS", _positive(int), defaults.max_groups),
            max_attributes=_read(env, "FLIPPER_MAX_ATTRIBUTES", _positive(int), defaults.max_attributes),
            max_query_length=_read(env, "FLIPPER_MAX_QUERY_LENGTH", _positive(int), defaults.max_query_length),
            max_body_length=_read(env, "FLIPPER_MAX_BODY_LENGTH", _positive(int), defaults.max_body_length),
            body_timeout=_read(env, "FLIPPER_BODY_TIMEOUT", _positive(float), defaults.body_timeout),
            max_response_bytes=_read(env, "FLIPPER_MAX_RESPONSE_BYTES", _positive(int), defaults.max_response_bytes),
            cache_control=_read(env, "FLIPPER_CACHE_CONTROL", _header_value, defaults.cache_control),
            cors_origins=_read(env, "FLIPPER_CORS_ORIGINS", _origins, defaults.cors_origins),
            api_keys=_read(env, "FLIPPER_API_KEYS", parse_api_keys, defaults.api_keys, show=None),
            api_keys_secret_arn=_read(env, "FLIPPER_API_KEYS_SECRET_ARN", _secret_arn, defaults.api_keys_secret_arn),
            redis_cluster=_read(env, "FLIPPER_REDIS_CLUSTER", _boolean, defaults.redis_cluster),
            redis_password_secret_arn=_read(
                env, "REDIS_PASSWORD_SECRET_ARN", _secret_arn, defaults.redis_password_secret_arn
            ),
            cache_max_age=_read(env, "FLIPPER_CACHE_MAX_AGE", _non_negative, defaults.cache_max_age),
            cache_max_bytes=_read(env, "FLIPPER_CACHE_MAX_BYTES", _positive(int), defaults.cache_max_bytes),
            audit_length=_read(env, "FLIPPER_AUDIT_LENGTH", _positive(int), defaults.audit_length),
            usage=_read(env, "FLIPPER_USAGE", _boolean, defaults.usage),
            usage_flush_seconds=_read(
                env, "FLIPPER_USAGE_FLUSH_SECONDS", _positive(float), defaults.usage_flush_seconds
            ),
            usage_max_features=_read(env, "FLIPPER_USAGE_MAX_FEATURES", _positive(int), defaults.usage_max_features),
        )


def has_hash_tag(prefix: str) -> bool:
    """Whether `prefix` holds a Redis Cluster hash tag: a non-empty `{...}` after its first `{`.

    The whole tag must lie inside the prefix; otherwise a caller's identifier could close it and
    choose the slot.
    """
    start = prefix.find("{")
    return start >= 0 and prefix.find("}", start + 1) > start + 1


def _read(
    env: Mapping[str, str],
    name: str,
    parse: Callable[[str], T],
    default: T,
    *,
    show: Callable[[str], str] | None = str,
) -> T:
    """`parse(env[name])`, or `default` when unset or empty; an error quotes the value as `show` renders it
    (None: not at all, for a secret's value must not reach the logs)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        shown = "" if show is None else f"={show(raw)!r}"
        raise SettingsError(f"{name}{shown} is invalid: {exc}") from None


def without_password(url: str) -> str:
    """`url` with the password it holds, if any, replaced by `***`: what may be logged."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{host}").geturl()


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = kind(raw)
        if not (value > 0 and math.isfinite(value)):  # type: ignore[operator, arg-type]
            raise ValueError("must be a finite number greater than zero")
        return value

    return parse


def _non_negative(raw: str) -> float:
    value = float(raw)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError("must be a finite number of seconds, 0 or more")
    return value


def _redis_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("must start with redis:// or rediss://")
    # Reading .port raises ValueError for a malformed or out-of-range port.
    if not parts.hostname or parts.port == 0:
        raise ValueError("needs a host and a valid port")
    return raw


def _boolean(raw: str) -> bool:
    value = raw.lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError("must be true or false")
    return value in ("true", "1")


# Both logging's and uvicorn's names (uvicorn has no WARN, FATAL or NOTSET).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def _header_value(raw: str) -> str:
    if not raw.isprintable() or not raw.isascii():
        raise ValueError("must be printable ASCII, as an HTTP header value")
    return raw


def _origins(raw: str) -> tuple[str, ...]:
    """Comma-separated origins (`https://app.example`, `http://localhost:3000`), or `*` for any."""
    origins = tuple(origin.strip() for origin in raw.split(",") if origin.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname or parts.path):
            raise ValueError(f"{origin!r} is not an origin such as https://app.example or *")
    return origins


def parse_api_keys(raw: str) -> tuple[str, ...]:
    """Comma-separated API keys, blanks around them ignored; from the environment or a secret's value."""
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    if not keys:
        raise ValueError("names no key")
    if not all(key.isascii() and key.isprintable() and " " not in key for key in keys):
        raise ValueError("a key is not printable ASCII without spaces, so no request header could carry it")
    return keys


def _secret_arn(raw: str) -> str:
    if not raw.startswith("arn:") or raw.count(":") < 6 or ":secretsmanager:" not in raw:
        raise ValueError("must be a Secrets Manager ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)")
    return raw
