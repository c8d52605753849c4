"""The upstream bounds and HTTP settings are documented where operators look: the process settings table
(docs/api/openai.md) and the bounds (docs/operations/deploy.md)."""

from __future__ import annotations

from docs_pages import doc_page, doc_section

from routerd.http.conn import MAX_HEAD_BYTES
from routerd.http.fast import HEAD_CACHE_SIZE
from routerd.providers.errors import MAX_RETRY_AFTER
from routerd.providers.google_auth import MAX_TOKEN_RESPONSE_BYTES
from routerd.settings import HttpSettings


def test_every_http_setting_is_in_the_settings_table_with_its_default() -> None:
    page = doc_page("api/openai.md")
    for name, field in HttpSettings.model_fields.items():
        default = field.default
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        assert f"| `ROUTERD_{name.upper()}` | `{shown}` |" in page, name


def test_every_upstream_bound_is_listed_with_its_value() -> None:
    bounds = doc_section("Bounds on what an upstream may send")
    for name in HttpSettings.model_fields:
        if name.startswith("upstream_"):
            assert f"`ROUTERD_{name.upper()}`" in bounds, name
    assert f"| {MAX_HEAD_BYTES // 1024} KiB | `routerd.http.conn.MAX_HEAD_BYTES`" in bounds
    assert f"| {MAX_RETRY_AFTER:g} s | `routerd.providers.errors.MAX_RETRY_AFTER`" in bounds
    assert f"| {MAX_TOKEN_RESPONSE_BYTES // (1024 * 1024)} MiB; redirects never followed |" in bounds


def test_the_request_head_cache_bound_is_documented_with_its_value() -> None:
    page = doc_page("operations/deploy.md")
    assert f"at most {HEAD_CACHE_SIZE} heads per client (`routerd.http.fast.HEAD_CACHE_SIZE`)" in page
