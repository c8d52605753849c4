"""Azure OpenAI's routes: ``/openai/deployments/{deployment}/{endpoint}?api-version=...``.

``AzureOpenAI(azure_endpoint=<routerd>)`` puts the model name in the path, as the deployment, and
sends no ``model`` in the body. :func:`azure_route` reads such a path into the endpoint and the model
group that serves the deployment name: the name itself when routerd serves it (a group, one of the
routing file's ``model_group_alias`` names, or a wildcard match), else an entry of an alias table of
Azure deployment names. :func:`routed_body` then puts the group into the body. Pure; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from routerd.errors import BadRequestError, NotFoundError
from routerd.frontdoors.limits import MAX_DEPLOYMENT_NAME
from routerd.providers.base import CHAT, COMPLETIONS, EMBEDDINGS

PREFIX = "/openai/deployments/"
# Suffix -> endpoint, longest first: "chat/completions" must win over "completions".
_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("/chat/completions", CHAT),
    ("/completions", COMPLETIONS),
    ("/embeddings", EMBEDDINGS),
)
# Dated versions ("2024-10-21", "2025-04-01-preview") and the v1 API's names.
_API_VERSION = re.compile(r"^(?:\d{4}-\d{2}-\d{2}(?:-[a-z]+)?|v1|latest|preview)$")


@dataclass(frozen=True, slots=True)
class AzureRoute:
    """Where an Azure-style request goes: ``endpoint`` (chat, completions, embeddings) of ``group``."""

    endpoint: str
    group: str
    deployment: str
    api_version: str


def azure_route(
    path: str,
    query: str,
    serves: Callable[[str], bool],
    aliases: Mapping[str, str] | None = None,
) -> AzureRoute:
    """The route of an Azure request.

    ``path`` is the raw (still percent-encoded) path, ``query`` the raw query string. ``serves``
    says whether routerd serves a model name (``lambda name: table.resolve(name) is not None``);
    ``aliases`` maps Azure deployment names to model groups. Raises a 404 for an unknown path or
    deployment, a 400 for a missing or malformed ``api-version``.
    """
    deployment, endpoint = parse_path(path)
    api_version = _api_version(query)
    if serves(deployment):
        return AzureRoute(endpoint, deployment, deployment, api_version)
    target = (aliases or {}).get(deployment)
    if target is not None and serves(target):
        return AzureRoute(endpoint, target, deployment, api_version)
    raise NotFoundError(
        f"the deployment {deployment!r} does not exist: no model group or alias of that name",
        param="deployment",
        code="DeploymentNotFound",
    )


def parse_path(path: str) -> tuple[str, str]:
    """(deployment name, endpoint) of an Azure path; a 404 for any other path."""
    if path.startswith(PREFIX):
        rest = path[len(PREFIX) :]
        for suffix, endpoint in _ENDPOINTS:
            if rest.endswith(suffix):
                name = unquote(rest[: -len(suffix)])
                if name and "/" not in rest[: -len(suffix)] and len(name) <= MAX_DEPLOYMENT_NAME:
                    return name, endpoint
                break
    raise NotFoundError(
        f"no route {path[:MAX_DEPLOYMENT_NAME]!r}: Azure routes are {PREFIX}{{deployment}}/"
        "chat/completions, /completions and /embeddings (a deployment name with '/' is sent as %2F)",
        code="unknown_route",
    )


def _api_version(query: str) -> str:
    values = parse_qs(query, keep_blank_values=True).get("api-version")
    if not values or not values[0]:
        raise BadRequestError(
            "the api-version query parameter is required on Azure routes",
            param="api-version",
            code="missing_api_version",
        )
    version = values[0]
    if not _API_VERSION.match(version):
        raise BadRequestError(
            f"api-version {version[:64]!r} is not a version (expected e.g. 2024-10-21 or 2025-04-01-preview)",
            param="api-version",
            code="invalid_api_version",
        )
    return version


def routed_body(body: Mapping[str, Any], route: AzureRoute) -> dict[str, Any]:
    """The request body for the router: the client's, with ``model`` set to the route's group.

    The deployment in the path decides, as on Azure, whatever ``model`` the body may carry.
    """
    return {**body, "model": route.group}
