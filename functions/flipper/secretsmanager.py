"""AWS Secrets Manager values (the cache password, API keys), fetched once per container and cached."""

from __future__ import annotations

# Long enough that a warm container never fetches again; short enough that a rotated secret is seen.
SECRET_MAX_AGE_SECONDS = 300


def fetch_secret(arn: str) -> str:
    """The secret string stored under `arn`, through powertools' parameters utility and its cache."""
    from aws_lambda_powertools.utilities import parameters  # boto3 is heavy: import only when a secret is used

    value = parameters.get_secret(arn, max_age=SECRET_MAX_AGE_SECONDS)
    if not isinstance(value, str):
        raise ValueError(f"secret {arn} does not hold a string")
    return value
