"""OAuth access tokens for Vertex AI, from google-auth credentials, cached and refreshed off the loop.

A deployment authenticates in one of three ways, first match wins:

1. an access token given directly (``api_key``): sent as is, never refreshed;
2. credentials (``vertex_credentials`` or ``GOOGLE_APPLICATION_CREDENTIALS``): a path to, or the JSON
   text of, a service-account key (``google.oauth2.service_account``) or an ``authorized_user`` file;
3. otherwise Application Default Credentials (``google.auth.default``).

google-auth is synchronous: loading credentials and refreshing tokens run in a worker thread
(``asyncio.to_thread``) so the event loop never blocks on the token endpoint. A token is reused until
``refresh_margin`` seconds before it expires; concurrent requests share one refresh. The token
endpoint is the ``token_uri`` of the credentials and the HTTP transport is injectable (``request``),
so tests run a fake token server on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any, Protocol

import google.auth
import google.auth.exceptions
import google.auth.transport

from routerd.errors import APIConnectionError, AuthenticationError, OpenAIError
from routerd.providers.errors import redact

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_REFRESH_MARGIN = 300.0  # seconds before expiry a token is renewed


class TokenSource(Protocol):
    """Where a deployment's bearer token comes from."""

    async def token(self) -> str:
        """A currently valid access token. Raises routerd errors when none can be had."""
        ...

    async def project_id(self) -> str | None:
        """The project the credentials belong to, when they say."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token (the upstream rejected it)."""
        ...


class StaticToken:
    """An access token given in the configuration."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken(***)"

    async def token(self) -> str:
        return self._token

    async def project_id(self) -> str | None:
        return None

    def invalidate(self) -> None:
        pass  # nothing to refresh: the configured token is all there is


class UrllibRequest(google.auth.transport.Request):
    """A google-auth transport over the standard library.

    google-auth's own transports need ``requests`` or ``urllib3``, which routerd does not depend on.
    Runs in a worker thread (token refreshes only), never on the event loop.
    """

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
        try:
            with _OPENER.open(request, timeout=timeout or 30) as response:
                return _Response(response.status, dict(response.headers), _read(response))
        except urllib.error.HTTPError as exc:  # a status google-auth wants to see and interpret
            return _Response(exc.code, dict(exc.headers), _read(exc))
        except (urllib.error.URLError, OSError) as exc:
            raise google.auth.exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"token request failed: {type(exc).__name__}"
            ) from exc


#: the most of a token endpoint's answer read (a token response is a few hundred bytes)
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A token request carries a signed assertion: a redirect is answered as the 3xx it is, never followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# proxies from the environment as urlopen would; redirects refused
_OPENER = urllib.request.build_opener(_NoRedirects)


def _read(response: Any) -> bytes:
    data: bytes = response.read(MAX_TOKEN_RESPONSE_BYTES + 1)
    if len(data) > MAX_TOKEN_RESPONSE_BYTES:
        raise google.auth.exceptions.TransportError(  # type: ignore[no-untyped-call]
            f"token response larger than {MAX_TOKEN_RESPONSE_BYTES} bytes"
        )
    return data


class _Response(google.auth.transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status = status
        self._headers = headers
        self._data = data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


CredentialsLoader = Callable[[], tuple[Any, str | None]]


class CredentialsTokenSource:
    """Tokens from google-auth credentials, loaded on first use and refreshed before expiry."""

    def __init__(
        self,
        loader: CredentialsLoader,
        *,
        provider: str = "vertex_ai",
        request: google.auth.transport.Request | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self._loader = loader
        self._provider = provider
        self._request = request or UrllibRequest()
        self._clock = clock
        self._margin = refresh_margin
        self._credentials: Any = None
        self._project: str | None = None
        self._stale = False
        # A thread lock, not an asyncio one: refreshes run in worker threads, and one source may
        # serve several event loops (the SDK, tests).
        self._lock = threading.Lock()
        self.refreshes = 0  # how many times a token was fetched (observable in tests and logs)

    def __repr__(self) -> str:
        return f"CredentialsTokenSource(provider={self._provider!r})"

    async def token(self) -> str:
        token = self._fresh_token()
        if token is not None:
            return token
        return await asyncio.to_thread(self._refresh_blocking)

    async def project_id(self) -> str | None:
        if self._credentials is None:
            await asyncio.to_thread(self._load_blocking)
        return self._project

    def invalidate(self) -> None:
        self._stale = True

    @property
    def expires_at(self) -> float | None:
        """When the current token expires (epoch seconds), or None before the first one."""
        credentials = self._credentials
        if credentials is None or credentials.expiry is None:
            return None
        expires: float = credentials.expiry.replace(tzinfo=UTC).timestamp()  # google-auth keeps naive UTC
        return expires

    def _fresh_token(self) -> str | None:
        expires_at = self.expires_at
        if expires_at is None or self._stale or not self._credentials.token:
            return None
        if expires_at - self._margin <= self._clock():
            return None
        token: str = self._credentials.token
        return token

    def _load_blocking(self) -> None:
        with self._lock:
            if self._credentials is None:
                try:
                    self._credentials, self._project = self._loader()
                except OpenAIError:
                    raise
                except (google.auth.exceptions.GoogleAuthError, OSError, ValueError) as exc:
                    raise self._auth_error("cannot load Google credentials", exc) from exc

    def _refresh_blocking(self) -> str:
        self._load_blocking()
        with self._lock:
            token = self._fresh_token()  # another thread may have refreshed while this one waited
            if token is not None:
                return token
            try:
                self._credentials.refresh(self._request)
            except google.auth.exceptions.TransportError as exc:
                raise APIConnectionError(
                    f"{self._provider}: cannot reach the Google token endpoint", llm_provider=self._provider
                ) from exc
            except google.auth.exceptions.RefreshError as exc:
                raise self._auth_error("the Google token endpoint refused the credentials", exc) from exc
            self._stale = False
            self.refreshes += 1
            token = self._credentials.token
            if not token:
                raise self._auth_error("the Google token endpoint returned no access token", None)
            return str(token)

    def _auth_error(self, what: str, exc: BaseException | None) -> AuthenticationError:
        detail = f": {redact(str(exc))[:300]}" if exc is not None else ""
        return AuthenticationError(f"{self._provider}: {what}{detail}", llm_provider=self._provider)


def credentials_loader(source: str | Mapping[str, Any] | None, scopes: tuple[str, ...]) -> CredentialsLoader:
    """A loader for ``source``: a path, the JSON text, or the parsed JSON of a credentials file;
    ``None`` means Application Default Credentials. Nothing is read until the loader runs."""

    def load() -> tuple[Any, str | None]:
        if source is None:
            credentials, project = google.auth.default(scopes=list(scopes))
            return credentials, project
        # imported here: google.oauth2 loads the crypto stack (~0.1 s), paid by deployments that use
        # a credentials file, not by every start of the daemon or of `routerd check`
        from google.oauth2 import credentials as user_credentials
        from google.oauth2 import service_account

        info = _credentials_info(source)
        kind = info.get("type")
        if kind == "service_account":
            sa = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=list(scopes)
            )
            return sa, info.get("project_id")
        if kind == "authorized_user":
            user = user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info, scopes=list(scopes)
            )
            return user, info.get("quota_project_id")
        raise AuthenticationError(
            f"unsupported Google credentials type {kind!r}: use a service_account or authorized_user file"
        )

    return load


def _credentials_info(source: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    text = source.strip()
    if not text.startswith("{"):
        with open(os.path.expanduser(text), encoding="utf-8") as handle:
            text = handle.read()
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        # never echo the text: it holds a private key
        raise ValueError("Google credentials are not valid JSON") from exc
    if not isinstance(info, dict):
        raise ValueError("Google credentials must be a JSON object")
    return info


def source_fingerprint(source: str | Mapping[str, Any] | None, scopes: tuple[str, ...]) -> str:
    """A stable key for one credentials source, so reloads keep using an already fetched token."""
    raw = json.dumps(source, sort_keys=True) if isinstance(source, Mapping) else str(source)
    return hashlib.sha256(f"{raw}\0{' '.join(scopes)}".encode()).hexdigest()
