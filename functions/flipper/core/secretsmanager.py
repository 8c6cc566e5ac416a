"""AWS Secrets Manager values (the cache password, API keys), fetched once per container and cached."""

from __future__ import annotations

# Flipper reads each secret once, when a container starts (a rotation reaches new containers); the cache
# serves a second read of the same ARN, e.g. one secret for both the password and the API keys.
SECRET_MAX_AGE_SECONDS = 300


def fetch_secret(arn: str) -> str:
    """The secret string stored under `arn`, through powertools' parameters utility and its cache."""
    from aws_lambda_powertools.utilities import parameters  # boto3 is heavy: import only when a secret is used

    value = parameters.get_secret(arn, max_age=SECRET_MAX_AGE_SECONDS)
    if not isinstance(value, str):
        raise ValueError(f"secret {arn} does not hold a string")
    return value
