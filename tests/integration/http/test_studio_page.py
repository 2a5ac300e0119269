"""The Studio's files over HTTP: served from the package, locked to this server by CSP, and
the model card they read (engine settings without paths)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.integration.http.conftest import TINY
from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model


def test_studio_redirects_to_its_page_with_a_strict_policy(tiny_server: ServerHandle) -> None:
    with httpx.Client(base_url=tiny_server.http_url, timeout=10) as client:
        moved = client.get("/studio")
        assert moved.status_code == 307 and moved.headers["location"] == "studio/"
        page = client.get("/studio/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    # Nothing from elsewhere: scripts, styles and fetches only from this server.
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    for testid in ("system-prompt", "rag-context", "message", "send", "ttft", "tps"):
        assert f'data-testid="{testid}"' in page.text


@pytest.mark.parametrize(
    ("name", "kind"), [("studio.js", "text/javascript"), ("studio.css", "text/css")]
)
def test_assets_are_served_and_reference_nothing_external(
    tiny_server: ServerHandle, name: str, kind: str
) -> None:
    response = httpx.get(f"{tiny_server.http_url}/studio/{name}", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(kind)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"https?://", response.text)


@pytest.mark.parametrize("name", ["index.htm", "..%2Fapp.py", "studio.py"])
def test_other_names_are_404_in_the_openai_error_shape(
    tiny_server: ServerHandle, name: str
) -> None:
    response = httpx.get(f"{tiny_server.http_url}/studio/{name}", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_models_describes_the_engine_without_paths(tiny_server: ServerHandle) -> None:
    card = httpx.get(f"{tiny_server.http_url}/v1/models", timeout=10).json()["data"][0]
    assert card["id"] == TINY
    engine = card["engine"]
    assert engine["file"].endswith(".gguf") and "/" not in engine["file"]
    assert (engine["parallel"], engine["context_size"]) == (4, 1024)
    assert engine["kv_cache_type"] == "f16" and engine["batch_size"] >= 4
    assert engine["cpu_variant"]
    assert card["sampling"]["max_tokens"] == card["max_tokens"]
    assert card["response_format"] is None
    assert str(tiny_server.config_path.parent) not in str(card)


def test_with_api_keys_the_page_opens_and_its_api_calls_need_a_key(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("studio:sk-studio-0123456789\n")
    with (
        running_server(
            tiny_model_path,
            parallel=1,
            context_size=512,
            extra_config={"server": {"auth": {"apiKeysFile": str(keys)}}},
        ) as server,
        httpx.Client(base_url=server.http_url, timeout=10) as client,
    ):
        for path in ("/studio", "/studio/", "/studio/studio.js", "/studio/studio.css"):
            assert client.get(path).status_code in (200, 307), path
        assert client.get("/v1/models").status_code == 401
        keyed = client.get("/v1/models", headers={"Authorization": "Bearer sk-studio-0123456789"})
        assert keyed.status_code == 200 and keyed.json()["data"][0]["engine"] is not None
