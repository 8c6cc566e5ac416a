"""The routes: what each path answers, as a table of small handlers around the store."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Hashable, Sequence

from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flipper.core.model import (
    Context,
    Snapshot,
    enabled_features,
    evaluate_all,
    evaluate_feature,
    unknown,
    valid_until,
)
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.core.usage import Usage
from flipper.serve import ofrep
from flipper.serve.etags import conditional, etag
from flipper.serve.query import parse_context, parse_feature_query, path_name
from flipper.serve.responses import JSONResponse, features_body

logger = logging.getLogger("flipper")

JSON = "application/json"
Render = Callable[[Snapshot], tuple[bytes, Sequence[str]]]  # a body, and the features it names (for usage)


class NameConvertor(PathConvertor):
    """A flag name in a path: the rest of it, slashes and line breaks included (`path` stops at a line break)."""

    regex = "(?s:.*)"


register_url_convertor("name", NameConvertor())


def exact(route: Route) -> Route:
    """`route`, matching only its whole path: Starlette ends its pattern with `$`, which also matches
    before a final line break, so `/\\n` was served as `/` (found by the fuzz test in tests/test_chaos.py)."""
    route.path_regex = re.compile(route.path_regex.pattern.removesuffix("$") + r"\Z")
    return route


class Endpoints:
    """The handler of each route, sharing the store, the settings, the reuse of cached answers and the
    instance's usage counts (None: FLIPPER_USAGE is off)."""

    def __init__(self, store: Store, settings: Settings, secured: bool, usage: Usage | None = None) -> None:
        self.store, self.settings, self.secured, self.usage = store, settings, secured, usage

    def routes(self) -> list[Route]:
        return [
            exact(Route(path, endpoint, methods=[method]))
            for path, method, endpoint in (
                ("/", "GET", self.features),
                ("/features/{name:name}", "GET", self.feature),
                ("/health", "GET", self.health),
                ("/openapi.json", "GET", self.openapi_json),
                ("/ofrep/v1/evaluate/flags/{key:name}", "POST", self.ofrep_flag),
                ("/ofrep/v1/evaluate/flags", "POST", self.ofrep_flags),
            )
        ]

    async def features(self, request: Request) -> Response:
        context = parse_context(request.scope["query_string"], self.settings)

        def render(snapshot: Snapshot) -> tuple[bytes, Sequence[str]]:
            features = enabled_features(snapshot)
            return features_body(features), features

        body, tag = await self._answer(context, "/", render)
        return self._conditional_json(request, self._bounded(body), tag)

    async def feature(self, request: Request) -> Response:
        name = path_name(request.path_params["name"], "feature name", self.settings, request.scope.get("raw_path"))
        context, explain = parse_feature_query(request.scope["query_string"], self.settings)

        def render(snapshot: Snapshot) -> tuple[bytes, Sequence[str]]:
            evaluation = evaluate_feature(name, snapshot)
            body = {"feature": name, "enabled": evaluation.enabled, "reason": evaluation.reason}
            if explain:
                body.update(evaluation.explanation())
            return JSONResponse(body).body, (name,)

        answer = await self._answer(context, ("feature", name, explain), render, feature=name)
        return self._conditional_json(request, *answer)

    async def ofrep_flag(self, request: Request) -> Response:
        key = ofrep.flag_key(request, self.settings)
        context = await ofrep.read_context(request, self.settings, key)

        def render(snapshot: Snapshot) -> tuple[bytes, Sequence[str]]:
            if unknown(key, snapshot):
                raise ofrep.not_found(key)  # raised before an answer is remembered, so never reused
            return JSONResponse(ofrep.evaluation(evaluate_feature(key, snapshot))).body, (key,)

        body, _ = await self._answer(context, ("ofrep", key), render, registry=True, feature=key)
        return Response(body, media_type=JSON)  # a single OFREP evaluation has no ETag

    async def ofrep_flags(self, request: Request) -> Response:
        context = await ofrep.read_context(request, self.settings)

        def render(snapshot: Snapshot) -> tuple[bytes, Sequence[str]]:
            results = evaluate_all(snapshot)
            body = JSONResponse({"flags": [ofrep.evaluation(result) for result in results]}).body
            return body, [result.feature for result in results]

        body, tag = await self._answer(context, "ofrep", render)
        return self._conditional_json(request, self._bounded(body), tag)

    async def openapi_json(self, request: Request) -> Response:
        return Response(self._api_document, media_type="application/json")

    async def health(self, request: Request) -> Response:
        await self.store.ping()
        return JSONResponse({"status": "ok"})

    @functools.cached_property
    def _api_document(self) -> bytes:
        """Built on the first request for it, not at a cold start, which no evaluation should wait for."""
        from flipper.serve import openapi

        return JSONResponse(openapi.document(self.settings, secured=self.secured)).body

    async def _answer(
        self, context: Context, what: Hashable, render: Render, *, registry: bool = False, feature: str | None = None
    ) -> tuple[bytes, str | None]:
        """The JSON body `render` makes of the caller's snapshot (with the registry when asked), and its ETag
        when known: reused from the cache when computed before from the very same cached keys (`what` names
        the question), until the first time boundary of the rules it consulted (`feature`'s alone, or every
        feature's) has passed. The features it names are counted as used."""
        snapshot = await self.store.snapshot(context, registry=registry)
        cache = self.store.cache
        if cache is None or not snapshot.stamp:
            body, named = render(snapshot)
            tag = None
        else:

            def fresh() -> tuple[bytes, str, Sequence[str], float | None]:
                body, named = render(snapshot)
                return body, etag(body), named, valid_until(snapshot, feature)

            reused = cache.answer((what, context), snapshot.stamp, self.store.clock(), fresh)
            body, tag, named = reused.body, reused.tag, reused.named
        if self.usage is not None:
            self.usage.record(body, named)
        return body, tag

    def _conditional_json(self, request: Request, body: bytes, tag: str | None) -> Response:
        return conditional(request, Response(body, media_type=JSON), self.settings.cache_control, tag)

    def _bounded(self, body: bytes) -> bytes:
        """`body`, unless it is over `max_response_bytes`: Lambda would fail to return it, and API Gateway
        answer a bare 500. A 500 of Flipper's own says why; too many flags is the operator's to fix."""
        limit = self.settings.max_response_bytes
        if len(body) > limit:
            message = (
                f"the answer is {len(body)} bytes long; the limit is {limit} "
                "(FLIPPER_MAX_RESPONSE_BYTES): too many flags apply to this caller"
            )
            logger.error(message)
            raise HTTPException(500, message)
        return body
