"""What the Lambda reports: JSON logs with a correlation id, EMF metrics, and X-Ray when switched on."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from flipper.core.connection import StoreError
from flipper.core.model import Context, Snapshot
from flipper.core.store import Store

F = TypeVar("F", bound=Callable[..., Any])

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "flipper")

logger = Logger(service=SERVICE)
# The app logs through logging.getLogger("flipper"): give it the same JSON format and correlation id.
copy_config_to_registered_loggers(source_logger=logger, include={"flipper"})
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Flipper"), service=SERVICE)
# Health checks and refused requests publish no metric, by design: not worth a warning each.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)


class MeteredStore(Store):
    """A store that counts evaluations and store errors and times each evaluation's script call, as EMF
    metrics. Every evaluation (`features` too) goes through `snapshot`: each is counted once."""

    async def snapshot(self, context: Context, *, registry: bool = False) -> Snapshot:
        with _metered_evaluation():
            return await super().snapshot(context, registry=registry)

    async def ping(self) -> None:
        with _counting_errors():
            await super().ping()

    async def add_usage(self, limit: int, now_ms: int, counted: list[tuple[str, int, int]]) -> int:
        """A usage flush (flipper.core.usage), counted apart from the evaluations' store errors: a failed
        flush fails no request."""
        try:
            dropped = await super().add_usage(limit, now_ms, counted)
        except StoreError:
            metrics.add_metric(name="UsageFlushFailures", unit=MetricUnit.Count, value=1)
            raise
        metrics.add_metric(name="UsageFlushes", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="UsageFeaturesDropped", unit=MetricUnit.Count, value=dropped)
        return dropped


@contextlib.contextmanager
def _counting_errors() -> Iterator[None]:
    try:
        yield
    except StoreError:
        metrics.add_metric(name="StoreErrors", unit=MetricUnit.Count, value=1)
        raise


@contextlib.contextmanager
def _metered_evaluation() -> Iterator[None]:
    """One evaluation: counted and timed when it succeeds, a store error when it fails."""
    started = time.perf_counter()
    with _counting_errors():
        yield
    metrics.add_metric(name="Evaluations", unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name="EvaluationLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
    )


def traced(handler: F) -> F:
    """`handler` under powertools' Tracer when tracing is on; untouched (and the X-Ray SDK unloaded) when off.

    Tracing is opt-in: the template's Tracing parameter sets POWERTOOLS_TRACE_DISABLED=false.
    """
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() not in ("false", "0"):
        return handler
    from aws_lambda_powertools import Tracer  # loads the X-Ray SDK: only paid for when tracing is on

    return Tracer().capture_lambda_handler(handler)
