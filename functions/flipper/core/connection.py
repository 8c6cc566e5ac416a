"""Reaching Redis: the client (fail-fast timeouts, one retry of a broken connection, cluster or not), the
Lua scripts it runs, and the mapping of Redis's failures to `StoreError` and `StoreUnavailable`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis.asyncio
from redis import exceptions
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from flipper.core.settings import Settings, SettingsError


class StoreError(Exception):
    """Redis answered with an error: a flag key that holds something other than a set, say."""


class StoreUnavailable(StoreError):
    """Redis could not be reached or did not answer in time; the request may be retried later."""


# Transient: Redis (or a cluster node) is down, unreachable, hung, failing over or resharding.
_UNAVAILABLE = (
    exceptions.ConnectionError,
    exceptions.TimeoutError,
    exceptions.ClusterError,
    exceptions.TryAgainError,
    exceptions.RedisClusterException,  # "cannot be connected", a slot not covered: not RedisErrors
)


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Turn Redis being down, unreachable or hung into StoreUnavailable, and what retrying cannot mend
    (a wrong password, an error reply, a flag name that is not UTF-8) into StoreError."""
    try:
        yield
    except exceptions.AuthenticationError as exc:  # a ConnectionError, but a retry will not help
        raise StoreError(str(exc)) from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(str(exc)) from exc
    except (exceptions.ResponseError, UnicodeDecodeError) as exc:
        raise StoreError(str(exc)) from exc


class _RedisCluster(RedisCluster):
    """redis-py's cluster client, without its retry of a timeout: a hung node costs one command timeout,
    as on a single Redis. A broken connection, a failover or a moved slot are still retried once."""

    ERRORS_ALLOW_RETRY = tuple(
        error for error in RedisCluster.ERRORS_ALLOW_RETRY if error is not exceptions.TimeoutError
    )


def script_source(name: str = "evaluate.lua") -> str:
    """A Lua script: packaged in the `flipper` package in a build (`flipper/lua/`), else the repository's `lua/`."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "lua" / name
    path = packaged if packaged.exists() else package.parents[1] / "lua" / name
    return path.read_text(encoding="utf-8")


def client_from_settings(settings: Settings) -> redis.asyncio.Redis | RedisCluster:
    """A client that fails fast: short timeouts, and one immediate retry on a broken connection.

    The retry covers a pooled connection that died with a Redis restart: the second attempt opens a
    fresh one. Timeouts are not retried, so a hung Redis costs one command timeout, not several.
    With FLIPPER_REDIS_CLUSTER the client is redis-py's cluster client (ElastiCache Serverless is
    always a cluster); with REDIS_PASSWORD_SECRET_ARN the password comes from Secrets Manager.
    """
    if settings.redis_url is None:
        raise SettingsError("REDIS_URL is not set")
    options: dict[str, Any] = {}
    if settings.redis_password_secret_arn is not None:
        from flipper.core.secretsmanager import (
            fetch_secret,  # boto3 is heavy: imported only when a secret is configured
        )

        options["password"] = fetch_secret(settings.redis_password_secret_arn)
    client_class = _RedisCluster if settings.redis_cluster else redis.asyncio.Redis
    return client_class.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.connect_timeout,
        socket_timeout=settings.command_timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(exceptions.ConnectionError,)),
        decode_responses=True,
        **options,
    )
