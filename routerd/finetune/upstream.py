"""One upstream call for the files and fine-tuning APIs: send, check the status, translate failures.

Every provider client goes through :class:`Upstream`, so every upstream failure reaches the client the
same way: a :mod:`routerd.errors` class in OpenAI's shape, with credentials scrubbed from the message
(:class:`routerd.providers.errors.ErrorContext` does the reading of OpenAI, Azure and Google error bodies).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from routerd.errors import NotFoundError, OpenAIError
from routerd.http import HttpClient, HttpResponse
from routerd.providers.errors import ErrorContext
from routerd.providers.urlpath import path_segment

JSON = dict[str, Any]

#: seconds an upstream call may take; uploads of large training files are the slow case
DEFAULT_TIMEOUT = 600.0


def path(*segments: str) -> str:
    """URL path segments joined with every segment escaped: ids come from clients and must stay one segment
    (``.`` and ``..`` are refused with a 400: no escaping keeps them from stepping up a segment)."""
    return "/".join(path_segment(segment) for segment in segments)


class Upstream:
    """Calls one provider's API with fixed credentials; raises routerd errors for non-2xx answers."""

    def __init__(
        self,
        http: HttpClient,
        provider: str,
        *,
        secrets: tuple[str, ...] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._http = http
        self.provider = provider
        self.timeout = timeout
        self._errors = ErrorContext(provider=provider, model="", secrets=tuple(s for s in secrets if s))

    async def call(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        missing: str = "",
    ) -> HttpResponse:
        """Send one request. ``missing`` names what a 404 means (``"file"``, ``"fine_tuning_job"``)."""
        if json is not None:
            content = orjson.dumps(json)
            headers = {**headers, "content-type": "application/json"}
        try:
            response = await self._http.request(
                method,
                url,
                headers=headers,
                content=content,
                params={k: v for k, v in (params or {}).items() if v is not None} or None,
                files=files,
                data=data,
                timeout=self.timeout,
            )
        except OpenAIError as exc:  # transport failures: the transport does not know who it talked to
            raise self._errors.annotate(exc) from exc
        if response.status >= 400:
            raise self.error(response, missing)
        return response

    async def call_json(self, method: str, url: str, **kwargs: Any) -> JSON:
        """:meth:`call`, then the body as a JSON object (an empty body is ``{}``)."""
        return self.json(await self.call(method, url, **kwargs))

    def json(self, response: HttpResponse) -> JSON:
        if not response.content.strip():
            return {}
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise self._errors.bad_gateway(
                f"{self.provider} answered HTTP {response.status} with a body that is not JSON",
                upstream_status=response.status,
            ) from None
        if not isinstance(body, dict):
            raise self._errors.bad_gateway(
                f"{self.provider} answered with JSON that is not an object", upstream_status=response.status
            )
        return body

    def error(self, response: HttpResponse, missing: str = "") -> OpenAIError:
        """The routerd error for a non-2xx answer; a 404 on a lookup gets a code naming what was missing."""
        exc = self._errors.from_response(response.status, response.headers, response.content)
        if missing and isinstance(exc, NotFoundError):
            # Providers disagree on the code (OpenAI: none or their own, Azure "NotFound", Google a
            # number); clients get one stable code per kind of object.
            return self._errors.make(
                NotFoundError,
                exc.message,
                upstream_status=response.status,
                code=f"{missing}_not_found",
                param=exc.param,
            )
        return exc

    def not_found(self, message: str, missing: str) -> OpenAIError:
        """A 404 routerd answers itself, for ids it can tell are not this provider's."""
        return self._errors.make(NotFoundError, message, code=f"{missing}_not_found")

    def make(self, cls: type[OpenAIError], message: str, **kwargs: Any) -> OpenAIError:
        return self._errors.make(cls, message, **kwargs)
