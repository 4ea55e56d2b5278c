"""The OpenAI-compatible backend against a chat-completions server started in the test."""

from __future__ import annotations

import pytest

from p2pnode.mcp.inference import InferenceError, InferenceRequest
from p2pnode.mcp.openai_http import OpenAIBackend
from tests.mcp.openai_server import OpenAIServer


def test_request_and_answer(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sekrit")
    with OpenAIServer(api_key="sekrit") as server:
        backend = OpenAIBackend(server.url, "tiny-llama", "TEST_KEY", timeout=5)
        result = backend.run(InferenceRequest("one two three", max_tokens=7))
    assert result.output == "three two one" and result.model == "tiny-llama" and result.backend == "openai"
    assert result.details == {"finish_reason": "stop", "prompt_tokens": 3, "completion_tokens": 3}
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["authorization"] == "Bearer sekrit"
    assert sent["body"] == {"model": "tiny-llama", "messages": [{"role": "user", "content": "one two three"}],
                            "max_tokens": 7, "stream": False}
    with OpenAIServer() as server:
        chosen = OpenAIBackend(server.url, "default-model").run(InferenceRequest("a b", model="other"))
    assert chosen.model == "other"


@pytest.mark.parametrize("status, complaint", [(503, "answered 503"), (401, "answered 401")])
def test_http_errors_are_inference_errors(status, complaint):
    with OpenAIServer(status=status, api_key="k" if status == 401 else "") as server:
        with pytest.raises(InferenceError, match=complaint):
            OpenAIBackend(server.url, "m").run(InferenceRequest("x"))


def test_unreachable_and_slow_endpoints():
    with pytest.raises(InferenceError, match="unreachable"):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", timeout=2).run(InferenceRequest("x"))
    with OpenAIServer(delay=2.0) as server:
        with pytest.raises(InferenceError, match="unreachable"):
            OpenAIBackend(server.url, "m", timeout=0.5).run(InferenceRequest("x"))
