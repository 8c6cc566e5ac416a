"""The Lambda entry point (`flipper.handler.handler`): the Starlette app behind Mangum, built once per container.

Everything below the imports runs at cold start only (Lambda's init phase), which also opens the Redis
connection and loads the script. Warm invocations reuse the store, so its Redis connection stays open and
its script stays registered. redis.asyncio connections belong to the event loop they were opened on, so
every invocation runs on this module's one loop.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths
from mangum import Mangum

from flipper.core.settings import Settings
from flipper.operate import admin
from flipper.serve.app import SHUTDOWN_FLUSH_SECONDS, create_app
from flipper.serve.observability import MeteredStore, logger, metrics, traced
from flipper.serve.snapstart import register_hooks

if TYPE_CHECKING:  # an annotation only: not imported at a cold start
    from aws_lambda_powertools.utilities.typing import LambdaContext

settings = Settings.from_environ()
store = MeteredStore.from_settings(settings)
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)  # before Mangum, which would otherwise make a loop of its own
app = create_app(store, settings)
asgi = Mangum(app, lifespan="off")  # no lifespan: the store lives as long as the container
# Still Lambda's init phase: connect and load the script now, so the first request pays for neither.
loop.run_until_complete(store.warm(settings.connect_timeout))
register_hooks(store, loop, settings.connect_timeout)  # SnapStart: closed before a snapshot, warmed after


def shutdown(signum: int, frame: FrameType | None) -> None:
    """SIGTERM: the container is shutting down. Lambda sends it to the runtime when an extension is registered
    (and gives it 300 ms): flush the usage counted since the last flush, within a short bound, and exit.

    Between invocations the loop is idle, so the flush can run on it; mid-invocation it cannot, and the
    interval is lost, as it is without an extension (no SIGTERM at all).
    """
    if app.state.usage is not None and not loop.is_running():
        loop.run_until_complete(app.state.usage.close(SHUTDOWN_FLUSH_SECONDS))
        metrics.flush_metrics()  # no invocation will publish the flush's metrics now
    sys.exit(0)


signal.signal(signal.SIGTERM, shutdown)


@metrics.log_metrics(capture_cold_start_metric=True)
# API Gateway REST and HTTP APIs and Function URLs all carry their request id at requestContext.requestId.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Serve one API Gateway or Function URL event, or run an operator's admin command (see flipper.operate.admin)."""
    asyncio.set_event_loop(loop)  # Mangum runs the app on the current loop: make it ours, every time
    if admin.is_admin_event(event):
        return loop.run_until_complete(admin.run(store, settings, event))
    # Which alias Lambda invoked is the platform's fact, unlike anything in the event: API Gateway invokes
    # `live`, so no request through it reaches the operator path, whatever its requestContext says.
    if admin.is_operator_invocation(context.invoked_function_arn):
        return loop.run_until_complete(admin.serve(store, settings, event))
    return asgi(event, context)
