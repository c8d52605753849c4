"""The daemon and the SDK run without aiohttp (it is only the test fakes' server now)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
sys.modules["aiohttp"] = None  # any import of it fails
import asyncio, httpx
import routerd, routerd.cli, routerd.sdk
from routerd.config import load_config
from routerd.http import default_client
from routerd.server.app import create_app

app = create_app(load_config("configs/example.yaml"))

async def main():
    await default_client().aclose()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://routerd") as client:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            response = await client.post("/v1/chat/completions", json=body)
    print(response.status_code)

asyncio.run(main())
"""


def test_the_daemon_serves_without_aiohttp() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "200"
