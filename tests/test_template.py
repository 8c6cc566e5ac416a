"""template.yaml agrees with the code: the handler it names exists, and its defaults pass the app's checks.

`make validate` (sam validate --lint) checks the template on its own; these check it against Flipper.
"""

from __future__ import annotations

import copy
import importlib
import re
import uuid
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from flipper.core.settings import Settings, has_hash_tag
from flipper.core.store import Store
from flipper.operate import admin
from flipper.serve.app import create_app

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


def load_template() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_handler_named_by_the_template_exists(template: dict[str, Any]) -> None:
    function = template["Resources"]["FlipperFunction"]["Properties"]
    module_name, _, attribute = function["Handler"].rpartition(".")
    assert (
        Path(TEMPLATE.parent, function["CodeUri"]).resolve() == Path(importlib.import_module("flipper").__file__).parent
    )
    assert module_name == "flipper.handler"
    source = Path(TEMPLATE.parent, function["CodeUri"], "handler.py").read_text(encoding="utf-8")
    assert f"\ndef {attribute}(" in source


def test_function_runs_on_arm64_python_313_with_a_short_timeout(template: dict[str, Any]) -> None:
    function = template["Globals"]["Function"]
    assert (function["Runtime"], function["Architectures"]) == ("python3.13", ["arm64"])
    assert function["Timeout"] <= 10


def test_default_prefix_carries_a_hash_tag_for_the_serverless_cluster(template: dict[str, Any]) -> None:
    assert has_hash_tag(template["Parameters"]["KeyPrefix"]["Default"])
    variables = template["Resources"]["FlipperFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["FLIPPER_KEY_PREFIX"] == {"Ref": "KeyPrefix"}
    assert variables["FLIPPER_REDIS_CLUSTER"] == {"Fn::If": ["CreateCache", "true", {"Ref": "RedisCluster"}]}


def test_production_gets_the_cache(template: dict[str, Any]) -> None:
    """Off by default (make dev-server sees a raw redis-cli write at once); on in the deployed function."""
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert Settings().cache_max_age == 0
    assert Settings.from_environ({"FLIPPER_CACHE_MAX_AGE": variables["FLIPPER_CACHE_MAX_AGE"]}).cache_max_age == 30


def test_function_reaches_the_cache_port_only(template: dict[str, Any]) -> None:
    """Inline egress rules replace the default allow-all; the second one exists only when a secret is used."""
    resources = template["Resources"]
    to_cache, to_secrets = resources["FunctionSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert (to_cache["FromPort"], to_cache["ToPort"]) == ({"Ref": "CachePort"}, {"Ref": "CachePort"})
    assert to_cache["DestinationSecurityGroupId"] == {"Ref": "CacheSecurityGroup"}
    assert to_secrets["Fn::If"][0] == "UsesSecrets"
    assert to_secrets["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    ingress = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    assert [(rule["GroupId"], rule["SourceSecurityGroupId"]) for rule in ingress] == [
        ({"Ref": "CacheSecurityGroup"}, {"Ref": "FunctionSecurityGroup"})
    ]


def test_http_api_routes_every_route_the_app_serves_and_the_rest_to_the_app(template: dict[str, Any]) -> None:
    """A route the app has but the API lacks would answer API Gateway's own 404 in production; so would any
    other path or method without the `$default` route (an HttpApi event with no path and no method)."""
    events = [
        event["Properties"] for event in template["Resources"]["FlipperFunction"]["Properties"]["Events"].values()
    ]
    assert [event for event in events if "Path" not in event] == [{"ApiId": {"Ref": "HttpApi"}}]
    # `{name+}` is API Gateway's greedy parameter; the app's `name` convertor matches the rest of the path.
    routed = {(event["Method"], event["Path"].replace("+}", ":name}")) for event in events if "Path" in event}
    app = create_app(Store(fakeredis.FakeAsyncRedis()), Settings())
    served = {(method, route.path) for route in app.routes for method in route.methods - {"HEAD"}}
    assert routed == served


def test_snapstart_is_a_parameter_off_by_default_on_a_published_alias(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["SnapStart"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("None", ["PublishedVersions", "None"])
    function = template["Resources"]["FlipperFunction"]["Properties"]
    assert function["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
    assert function["AutoPublishAlias"]


def test_the_api_invokes_the_published_alias_that_snapstart_applies_to(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SAM's own translation: every route's integration and permission name the alias, never $LATEST."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator resolves pseudo-parameters
    template = copy.deepcopy(template)
    template["Resources"]["FlipperFunction"]["Properties"]["CodeUri"] = "s3://bucket/flipper.zip"  # as packaged
    resources = transform(template, {"SnapStart": "PublishedVersions"}, _NoManagedPolicies())["Resources"]

    alias = next(
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Alias" and resource["Properties"]["Name"] == "live"
    )
    assert resources["FlipperFunction"]["Properties"]["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
    body = resources["HttpApi"]["Properties"]["Body"]
    permissions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert [p["FunctionName"] for p in permissions] == [{"Ref": alias}] * len(body["paths"])
    uris = [
        op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"] for ops in body["paths"].values() for op in ops.values()
    ]
    assert {uri.rpartition("/functions/")[2] for uri in uris} == {f"${{{alias}}}/invocations"}


class _NoManagedPolicies:
    """The translator asks IAM for AWS managed policy ARNs only when a template names one; this one does not."""

    def load(self) -> dict[str, str]:
        return {}


def function_cors_origins(template: dict[str, Any], parameter: str) -> str:
    """FLIPPER_CORS_ORIGINS as CloudFormation resolves it when CorsAllowOrigins is `parameter`."""
    variables = template["Resources"]["FlipperFunction"]["Properties"]["Environment"]["Variables"]
    delimiter, values = variables["FLIPPER_CORS_ORIGINS"]["Fn::Join"]
    assert values == {"Ref": "CorsAllowOrigins"}
    return delimiter.join(origin.strip() for origin in parameter.split(","))


def test_the_function_gets_the_apis_cors_origins(template: dict[str, Any]) -> None:
    """API Gateway may pass a preflight to the function (the $default route takes OPTIONS), which must then
    grant the same origins as the API (tests/test_handler.py sends such preflights)."""
    assert template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]["AllowOrigins"] == {
        "Ref": "CorsAllowOrigins"
    }
    for parameter in (template["Parameters"]["CorsAllowOrigins"]["Default"], "https://a.example, https://b.example"):
        origins = Settings.from_environ({"FLIPPER_CORS_ORIGINS": function_cors_origins(template, parameter)})
        assert origins.cors_origins == tuple(origin.strip() for origin in parameter.split(","))


def resolve(value: Any, pseudo: dict[str, str]) -> Any:
    """`value` with the intrinsic functions the cache's name may use resolved, as CloudFormation would."""
    if isinstance(value, dict) and len(value) == 1:
        [(function, argument)] = value.items()
        if function == "Ref":
            return pseudo[argument]
        if function == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: pseudo[m[1]], argument)
        if function == "Fn::Join":
            return argument[0].join(resolve(argument[1], pseudo))
        if function == "Fn::Split":
            return resolve(argument[1], pseudo).split(argument[0])
        if function == "Fn::Select":
            return resolve(argument[1], pseudo)[int(argument[0])]
    if isinstance(value, list):
        return [resolve(item, pseudo) for item in value]
    return value


# ElastiCache's rule for a cache name: 1 to 40 characters, lowercase letters, digits and single hyphens,
# starting with a letter and not ending with a hyphen.
CACHE_NAME = re.compile(r"[a-z](?:-?[a-z0-9])*")


@pytest.mark.parametrize("stack_name", ["flipper-dev", "A" * 128])
def test_the_cache_name_fits_elasticaches_limit_whatever_the_stack_name(
    template: dict[str, Any], stack_name: str
) -> None:
    """Stack names go up to 128 characters; a cache name, to 40."""
    stack_id = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{stack_name}/{uuid.uuid4()}"
    pseudo = {"AWS::StackName": stack_name, "AWS::StackId": stack_id}
    name = resolve(template["Resources"]["Cache"]["Properties"]["ServerlessCacheName"], pseudo)
    assert len(name) <= 40
    assert CACHE_NAME.fullmatch(name), name


def test_the_throttling_parameters_say_they_apply_per_route(template: dict[str, Any]) -> None:
    """DefaultRouteSettings throttles each route on its own: the description gives the multiplier, kept true."""
    routes = len(template["Resources"]["FlipperFunction"]["Properties"]["Events"])
    rate = template["Parameters"]["ThrottlingRateLimit"]["Description"]
    assert f"each of the API's {routes} routes" in rate
    assert f"up to {routes} times it" in rate
    assert "per route" in template["Parameters"]["ThrottlingBurstLimit"]["Description"]
    assert "ThrottlingRateLimit" in template["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]


def test_the_operator_url_is_iam_signed_on_an_alias_that_only_the_url_may_invoke(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What lets the function take the Function URL's authorizer as proof (docs/operate.md, "Who made a
    change"): the URL is AWS_IAM, on the alias the handler checks for, at the version `live` runs; the
    operators' policy allows invoking that alias only through the URL, and no resource policy names it."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = copy.deepcopy(template)
    template["Resources"]["FlipperFunction"]["Properties"]["CodeUri"] = "s3://bucket/flipper.zip"
    resources = transform(template, {}, _NoManagedPolicies())["Resources"]
    url = resources["OperatorUrl"]["Properties"]
    assert url == {"TargetFunctionArn": {"Ref": "OperatorAlias"}, "AuthType": "AWS_IAM"}
    alias = resources["OperatorAlias"]["Properties"]
    assert alias["Name"] == admin.OPERATOR_ALIAS
    assert alias["FunctionVersion"] == resources["FlipperFunctionAliaslive"]["Properties"]["FunctionVersion"]
    permissions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert {p["FunctionName"]["Ref"] for p in permissions} == {"FlipperFunctionAliaslive"}  # the API's only
    statements = resources["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    on_alias = {s["Action"]: s.get("Condition") for s in statements if s["Resource"] == {"Ref": "OperatorAlias"}}
    assert on_alias == {
        "lambda:InvokeFunctionUrl": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
        "lambda:InvokeFunction": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}},
    }
    assert template["Outputs"]["OperatorUrl"]["Value"] == {"Fn::GetAtt": ["OperatorUrl", "FunctionUrl"]}
