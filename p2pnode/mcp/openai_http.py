"""The ``run_inference`` backend for an OpenAI-compatible HTTP endpoint (llama.cpp's server, Ollama, vLLM
all serve ``POST /v1/chat/completions``), chosen with ``[mcp.inference] backend = "openai"``.

The request is the input as one user message; the answer is the first choice's text. It uses the standard
library's ``urllib`` (no client library to add for one JSON POST) and, like the embedded model, blocks
while it works: the asyncio runtime runs ``run`` on a worker thread.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from p2pnode.mcp.inference import InferenceError, InferenceRequest, InferenceResult, SyncBackend

MAX_RESPONSE = 4 << 20


class OpenAIBackend(SyncBackend):
    name = "openai"

    def __init__(self, endpoint: str, model: str, api_key_env: str = "", timeout: float = 60.0):
        self.endpoint = endpoint.rstrip("/")
        self.model = model
        self.api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.timeout = timeout

    def models(self) -> list[str]:
        return [self.model]

    def run(self, request: InferenceRequest) -> InferenceResult:
        model = request.model or self.model
        body = {"model": model, "messages": [{"role": "user", "content": request.data().decode(errors="replace")}],
                "max_tokens": request.max_tokens, "stream": False}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        http_request = urllib.request.Request(f"{self.endpoint}/chat/completions", json.dumps(body).encode(),
                                              headers, method="POST")
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout) as response:
                answer = json.loads(response.read(MAX_RESPONSE))
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode(errors="replace").strip()
            raise InferenceError(f"{self.endpoint} answered {exc.code} {exc.reason}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise InferenceError(f"{self.endpoint} unreachable: {getattr(exc, 'reason', exc)}") from None
        except ValueError as exc:
            raise InferenceError(f"{self.endpoint} did not answer JSON: {exc}") from None
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise InferenceError(f"{self.endpoint} answered without choices[0].message.content") from None
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        return InferenceResult(model=str(answer.get("model") or model), backend=self.name, output=str(text),
                               details={"finish_reason": str(choice.get("finish_reason") or ""),
                                        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                                        "completion_tokens": int(usage.get("completion_tokens") or 0)})
