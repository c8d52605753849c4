"""AWS credentials and SigV4 request signing for Bedrock and SageMaker, through ``botocore``.

``botocore`` is an optional extra (``pip install 'routerd[bedrock]'``); a deployment that needs it
without it installed is a config error naming the extra. Credentials, in LiteLLM's order:

1. ``aws_access_key_id`` + ``aws_secret_access_key`` (+ ``aws_session_token``) from ``litellm_params``;
2. ``aws_role_name`` + ``aws_web_identity_token``: STS ``AssumeRoleWithWebIdentity`` (an unsigned call
   to ``aws_sts_endpoint``, default ``https://sts.{region}.amazonaws.com``; session name
   ``aws_session_name``, default ``routerd``); the temporary credentials are cached until
   :data:`REFRESH_BEFORE_EXPIRY_S` before they expire. ``aws_role_name`` alone (AssumeRole with other
   credentials) is **not supported yet**: such a deployment fails every call with a clear 401 instead
   of silently using other credentials;
3. otherwise botocore's standard chain (environment, ``aws_profile_name`` / shared config, container
   and instance metadata), resolved off the event loop on first use and refreshed by botocore.

The region is ``aws_region_name``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else ``us-east-1``.
"""

from __future__ import annotations

import asyncio
import os
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from routerd.errors import AuthenticationError, ConfigError, OpenAIError, error_for_status
from routerd.http import HttpClient

__all__ = ["DEFAULT_REGION", "AwsSigner", "aws_region"]

DEFAULT_REGION = "us-east-1"
#: temporary (web identity) credentials are renewed this long before they expire
REFRESH_BEFORE_EXPIRY_S = 300.0
#: lifetime asked of STS for web identity credentials (STS's default and minimum is 900-3600 s)
WEB_IDENTITY_DURATION_S = 3600
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
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
    web_identity: WebIdentity | None = field(default=None, repr=False)
    clock: Callable[[], float] = time.time  # wall clock, for credential expiry (injectable in tests)
    _chain: Any = field(default=None, repr=False)
    _temporary: tuple[Any, float] | None = field(default=None, repr=False)  # (credentials, expiry)
    _lock: asyncio.Lock | None = field(default=None, repr=False)

    @classmethod
    def from_extra(cls, service: str, region: str, extra: Mapping[str, Any], where: str) -> AwsSigner:
        """The signer for a deployment's ``litellm_params``; ConfigError without botocore."""
        if _botocore() is None:
            raise ConfigError([f"{where}: AWS signing needs botocore: {_EXTRA}"])

        def text(key: str) -> str | None:
            value = extra.get(key)
            return value if isinstance(value, str) and value else None

        unsupported = None
        role, token = text("aws_role_name"), text("aws_web_identity_token")
        if bool(role) != bool(token):
            unsupported = (
                "aws_role_name without aws_web_identity_token (STS AssumeRole) is not supported yet: give "
                "aws_role_name + aws_web_identity_token, aws_access_key_id + aws_secret_access_key, or "
                "neither to use the standard AWS chain"
            )
        web_identity = None
        if role and token:
            web_identity = WebIdentity(
                role_arn=role,
                token=token,
                session_name=text("aws_session_name") or "routerd",
                sts_endpoint=(text("aws_sts_endpoint") or f"https://sts.{region}.amazonaws.com").rstrip("/"),
            )
        return cls(
            service=service,
            region=region,
            access_key=text("aws_access_key_id"),
            secret_key=text("aws_secret_access_key"),
            session_token=text("aws_session_token"),
            profile=text("aws_profile_name"),
            unsupported=unsupported,
            web_identity=web_identity,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in an error message."""
        token = self.web_identity.token if self.web_identity else None
        return tuple(s for s in (self.secret_key, self.session_token, token) if s)

    async def sign(
        self, http: HttpClient, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """``headers`` plus ``x-amz-date``, ``x-amz-security-token`` and ``authorization`` for this call."""
        if self.unsupported:
            raise AuthenticationError(self.unsupported)
        botocore = _botocore()
        if self.web_identity is not None:
            credentials = await self._assumed(http, botocore, self.web_identity)
        else:
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

    async def _assumed(self, http: HttpClient, botocore: Any, identity: WebIdentity) -> Any:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one STS call at a time; the others reuse its answer
            cached = self._temporary
            if cached is not None and self.clock() < cached[1] - REFRESH_BEFORE_EXPIRY_S:
                return cached[0]
            key, secret, token, expiry = await identity.assume(http)
            credentials = botocore.credentials.Credentials(key, secret, token)
            self._temporary = (credentials, expiry)
            return credentials

    def _resolve_chain(self, botocore: Any) -> Any:
        session = botocore.session.Session(profile=self.profile)
        credentials = session.get_credentials()
        if credentials is None:
            raise AuthenticationError(
                "no AWS credentials: set aws_access_key_id / aws_secret_access_key, or configure the "
                "standard AWS chain (AWS_ACCESS_KEY_ID, a profile, an instance role)"
            )
        return credentials


@dataclass(frozen=True, slots=True)
class WebIdentity:
    """An STS AssumeRoleWithWebIdentity call: role, OIDC token, session name and STS endpoint."""

    role_arn: str
    token: str = field(repr=False)
    session_name: str
    sts_endpoint: str

    async def assume(self, http: HttpClient) -> tuple[str, str, str, float]:
        """``(access key, secret, session token, expiry as epoch seconds)`` from STS."""
        form = urlencode(
            {
                "Action": "AssumeRoleWithWebIdentity",
                "Version": "2011-06-15",
                "RoleArn": self.role_arn,
                "RoleSessionName": self.session_name,
                "WebIdentityToken": self.token,
                "DurationSeconds": str(WEB_IDENTITY_DURATION_S),
            }
        ).encode()
        headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/xml"}
        response = await http.request(
            "POST", f"{self.sts_endpoint}/", headers=headers, content=form, timeout=30.0
        )
        try:
            root = ElementTree.fromstring(response.content)
        except ElementTree.ParseError:
            root = None
        if response.status >= 400 or root is None:
            raise _sts_error(response.status, root)
        found = root.find(f".//{_STS_NS}Credentials")
        if found is None:
            found = root.find(".//Credentials")
        values = (
            {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in found} if found is not None else {}
        )
        try:
            expiry = datetime.fromisoformat(values["Expiration"].replace("Z", "+00:00")).timestamp()
            return values["AccessKeyId"], values["SecretAccessKey"], values["SessionToken"], expiry
        except (KeyError, ValueError) as exc:
            raise AuthenticationError(
                "STS answered AssumeRoleWithWebIdentity without usable credentials"
            ) from exc


def _sts_error(status: int, root: ElementTree.Element | None) -> OpenAIError:
    code = message = ""
    if root is not None:
        for element in root.iter():
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "Code":
                code = element.text or ""
            elif tag == "Message":
                message = element.text or ""
    # a refused identity is a configuration problem of this deployment: 401, which cools it down
    cls = AuthenticationError if status in (400, 401, 403) else error_for_status(status)
    return cls(
        f"STS AssumeRoleWithWebIdentity failed: {code or status} {message}".strip(), upstream_status=status
    )
