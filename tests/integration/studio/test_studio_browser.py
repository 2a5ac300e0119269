"""Sentiric Studio in a real browser (headless Chromium) against a real server on SmolLM2.

A reply streams in, TTFT and tokens/s show numbers, the system prompt and RAG panels reach
the server (the prompt grows with them), structured output shows validated JSON, and the
console stays free of errors. A screenshot is saved under the test's tmp dir; with
SENTIRIC_UPDATE_STUDIO_SCREENSHOT=1 it also replaces docs/images/studio.png.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.support import browser
from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "images" / "studio.png"
MODEL = "SmolLM2-135M-Instruct"
REPLY_TIMEOUT_S = 90.0
PAGE_TIMEOUT_S = 30.0
# Longer than the default system prompt SmolLM2's template writes when there is none, so
# the prompt grows by it.
SYSTEM_PROMPT = (
    "You are a patient geography teacher at a secondary school in Lyon. You answer questions "
    "about capitals, rivers, mountains and countries in one short, friendly sentence, and you "
    "never make up facts you are not sure about."
)
RAG_CONTEXT = (
    "Paris is the capital and largest city of France, on the Seine. The city has about "
    "2.1 million inhabitants and its metropolitan area about 12 million. The Eiffel Tower "
    "was built for the 1889 World's Fair and is 330 metres tall. The Louvre is the most "
    "visited museum in the world."
)
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "minLength": 1, "maxLength": 60},
        "sure": {"type": "boolean"},
    },
    "required": ["answer", "sure"],
    "additionalProperties": False,
}

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float = PAGE_TIMEOUT_S) -> T:
    """Poll `check` until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def studio_server(smollm2_path: Path) -> Iterator[ServerHandle]:
    with running_server(
        smollm2_path,
        parallel=2,
        context_size=2048,
        extra_config={"model": {"alias": MODEL}, "sampling": {"maxTokens": 256}},
    ) as handle:
        yield handle


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[WebDriver]:
    problem = browser.missing()
    if problem is not None:
        # Not a skip: CI installs the browser (.ci/run), and a silent skip would hide that
        # the Studio went untested.
        pytest.fail(problem)
    with browser.headless_chromium(tmp_path) as chrome:
        yield chrome


def by_testid(driver: WebDriver, testid: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def fill(driver: WebDriver, testid: str, text: str) -> None:
    field = by_testid(driver, testid)
    field.clear()
    if text:
        field.send_keys(text)


def number(driver: WebDriver, testid: str) -> float:
    text = by_testid(driver, testid).text.strip()
    try:
        return float(text)
    except ValueError:
        raise AssertionError(f"{testid} shows {text!r}, not a number") from None


def send(driver: WebDriver, message: str) -> WebElement:
    """Type and send a message; return its reply bubble once it has finished."""
    before = len(driver.find_elements(By.CSS_SELECTOR, '[data-testid="reply"]'))
    fill(driver, "message", message)
    by_testid(driver, "send").click()
    replies = wait_for(
        "the reply bubble",
        lambda: (
            r
            if len(r := driver.find_elements(By.CSS_SELECTOR, '[data-testid="reply"]')) > before
            else None
        ),
    )
    reply = replies[-1]
    state = wait_for(
        "the reply to finish",
        lambda: s if (s := reply.get_attribute("data-state")) in ("done", "failed") else None,
        timeout=REPLY_TIMEOUT_S,
    )
    assert state == "done", reply.text
    return reply


def test_studio_streams_measures_and_sends_the_panels(
    studio_server: ServerHandle, driver: WebDriver, tmp_path: Path
) -> None:
    driver.get(f"{studio_server.http_url}/studio")
    assert driver.current_url.endswith("/studio/")
    wait_for(
        "the model card",
        lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
    )
    assert by_testid(driver, "model-name").text == MODEL
    engine = by_testid(driver, "engine").text
    assert "SmolLM2-135M-Instruct" in engine and ".gguf" in engine and "/" not in engine

    fill(driver, "temperature", "0")
    fill(driver, "max-tokens", "24")
    question = "What is the capital of France?"

    # 1. A bare question: the reply streams in (several chunks) and is measured.
    reply = send(driver, question)
    assert reply.find_element(By.CLASS_NAME, "content").text.strip()
    assert int(reply.get_attribute("data-chunks") or 0) > 1
    assert number(driver, "ttft") > 0
    assert number(driver, "tps") > 0
    bare = number(driver, "prompt-tokens")

    # 2. The system prompt panel reaches the server: the prompt grows by it.
    by_testid(driver, "clear").click()
    fill(driver, "system-prompt", SYSTEM_PROMPT)
    send(driver, question)
    with_system = number(driver, "prompt-tokens")
    assert with_system > bare + 10, (bare, with_system)

    # 3. So does the RAG panel (rag_context, wrapped by the profile's ragTemplate).
    by_testid(driver, "clear").click()
    fill(driver, "rag-context", RAG_CONTEXT)
    send(driver, question)
    with_rag = number(driver, "prompt-tokens")
    assert with_rag > with_system + 40, (with_system, with_rag)
    sent = json.loads(
        driver.execute_script("return document.getElementById('last-request').textContent")
    )
    assert sent["rag_context"] == RAG_CONTEXT
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}

    # 4. Structured output: the reply is JSON of the schema, and the page says it is valid.
    Select(by_testid(driver, "output-mode")).select_by_value("json_schema")
    fill(driver, "json-schema", json.dumps(ANSWER_SCHEMA))
    fill(driver, "max-tokens", "96")
    send(driver, "Is Paris the capital of France? Answer as JSON.")
    # textContent: the heading it sits in is shown upper-case.
    assert by_testid(driver, "json-status").get_attribute("textContent") == "valid"
    shown = json.loads(by_testid(driver, "json-view").text)
    assert set(shown) == {"answer", "sure"}

    # Running medians over the four replies.
    assert by_testid(driver, "reply-count").get_attribute("textContent") == "4 replies"
    assert number(driver, "ttft-median") > 0
    assert number(driver, "tps-median") > 0

    screenshot = tmp_path / "studio.png"
    assert driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("SENTIRIC_UPDATE_STUDIO_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)

    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == [], errors


def test_the_api_key_field_is_sent_as_a_bearer_token(
    studio_server: ServerHandle, driver: WebDriver
) -> None:
    driver.get(f"{studio_server.http_url}/studio/")
    wait_for(
        "the model card",
        lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
    )
    fill(driver, "api-key", "sk-studio-test")
    # The key is kept for this tab only, and every call carries it.
    by_testid(driver, "message").click()
    stored = driver.execute_script("return sessionStorage.getItem('sentiric-studio-api-key')")
    assert stored == "sk-studio-test"
    seen = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const original = window.fetch;
        window.fetch = (url, init) => {
          done(new Headers((init || {}).headers).get('Authorization'));
          window.fetch = original;
          return original(url, init);
        };
        document.querySelector('[data-testid="api-key"]').dispatchEvent(new Event('change'));
        """
    )
    assert seen == "Bearer sk-studio-test"
