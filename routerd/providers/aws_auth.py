"""AWS credentials and SigV4 request signing for Bedrock and SageMaker, through ``botocore``.

``botocore`` is an optional extra (``pip install 'routerd[bedrock]'``); a deployment that needs it
without it installed is a config error naming the extra. Credentials, in LiteLLM's order:

1. ``aws_access_key_id`` + ``aws_secret_access_key`` (+ ``aws_session_token``) from ``litellm_params``;
2. ``aws_role_name`` (with or without ``aws_web_identity_token``): AssumeRole is **not supported yet**;
   such a deployment fails every call with a clear 401 instead of silently using other credentials;
3. otherwise botocore's standard chain (environment, ``aws_profile_name`` / shared config, container
   and instance metadata), resolved off the event loop on first use and refreshed by botocore.

The region is ``aws_region_name``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else ``us-east-1``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from routerd.errors import AuthenticationError, ConfigError

__all__ = ["DEFAULT_REGION", "AwsSigner", "aws_region"]

DEFAULT_REGION = "us-east-1"
_EXTRA = "pip install 'routerd[bedrock]' (botocore)"


def aws_region(extra: Mapping[str, Any], region_name: str | None = None) -> str:
    """The deployment's AWS region (see the module docstring for the order)."""
    for value in (extra.get("aws_region_name"), region_name):
        if isinstance(value, str) and value:
            return value
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def _botocore() -> Any:
    try:
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import botocore.session
    except ImportError:  # pragma: no cover - the dev extra installs it
        return None
    return botocore


@dataclass(slots=True)
class AwsSigner:
    """Signs requests for one deployment (``service`` is ``bedrock`` or ``sagemaker``)."""

    service: str
    region: str
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    unsupported: str | None = None  # why no call can be signed (an unsupported credential setting)
    _chain: Any = field(default=None, repr=False)

    @classmethod
    def from_extra(cls, service: str, region: str, extra: Mapping[str, Any], where: str) -> AwsSigner:
        """The signer for a deployment's ``litellm_params``; ConfigError without botocore."""
        if _botocore() is None:
            raise ConfigError([f"{where}: AWS signing needs botocore: {_EXTRA}"])

        def text(key: str) -> str | None:
            value = extra.get(key)
            return value if isinstance(value, str) and value else None

        unsupported = None
        if text("aws_role_name") or text("aws_web_identity_token"):
            unsupported = (
                "aws_role_name / aws_web_identity_token (STS AssumeRole) is not supported yet: give "
                "aws_access_key_id + aws_secret_access_key, or leave them out to use the standard AWS chain"
            )
        return cls(
            service=service,
            region=region,
            access_key=text("aws_access_key_id"),
            secret_key=text("aws_secret_access_key"),
            session_token=text("aws_session_token"),
            profile=text("aws_profile_name"),
            unsupported=unsupported,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in an error message."""
        return tuple(s for s in (self.secret_key, self.session_token) if s)

    async def sign(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """``headers`` plus ``x-amz-date``, ``x-amz-security-token`` and ``authorization`` for this call."""
        if self.unsupported:
            raise AuthenticationError(self.unsupported)
        botocore = _botocore()
        credentials = await self._credentials(botocore)
        request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        botocore.auth.SigV4Auth(credentials, self.service, self.region).add_auth(request)
        return {name.lower(): str(value) for name, value in request.headers.items()}

    async def _credentials(self, botocore: Any) -> Any:
        if self.access_key and self.secret_key:
            return botocore.credentials.Credentials(self.access_key, self.secret_key, self.session_token)
        if self._chain is None:
            # the chain may read files or call the metadata service: never on the event loop
            self._chain = await asyncio.to_thread(self._resolve_chain, botocore)
        # refreshable credentials may refresh over the network here
        return await asyncio.to_thread(self._chain.get_frozen_credentials)

    def _resolve_chain(self, botocore: Any) -> Any:
        session = botocore.session.Session(profile=self.profile)
        credentials = session.get_credentials()
        if credentials is None:
            raise AuthenticationError(
                "no AWS credentials: set aws_access_key_id / aws_secret_access_key, or configure the "
                "standard AWS chain (AWS_ACCESS_KEY_ID, a profile, an instance role)"
            )
        return credentials
