"""Model execution for ``run_inference``: a backend interface and the embedded default.

A backend answers ``infer(request, on_done, on_error)`` and reports exactly once. The embedded backend is
Google's Magika: a deep-learning content-type classifier (an ONNX network, ~3 MB, shipped inside the
``magika`` wheel and run by ``onnxruntime``; nothing is downloaded at run time) that reads the bytes of
its input and names what they are (``python``, ``json``, ``markdown``, ``txt``, ``pem``... about 200
content types) with a confidence score. It is a real model run on the input, small enough for every
node, and answers a question an agent asks of content it was handed.

The embedded model computes synchronously (milliseconds); ``run`` does the work, and the runtime decides
where it runs (the asyncio runtime: a worker thread, so the event loop keeps serving; tests and the
simulator: inline). ``p2pnode.mcp.openai_http`` is the other backend: any OpenAI-compatible HTTP
endpoint (llama.cpp server, Ollama, vLLM).
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_INPUT_BYTES = 1 << 20


class InferenceError(Exception):
    """The backend could not answer (a bad input, a missing model, an unreachable endpoint): a tool error."""


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    input: str
    model: str | None = None
    encoding: str = "utf-8"  # or "base64": the input is bytes
    max_tokens: int = 256

    def data(self) -> bytes:
        if self.encoding == "base64":
            try:
                raw = base64.b64decode(self.input, validate=True)
            except binascii.Error as exc:
                raise InferenceError(f"input is not base64: {exc}") from None
        else:
            raw = self.input.encode()
        if len(raw) > MAX_INPUT_BYTES:
            raise InferenceError(f"input of {len(raw)} bytes exceeds the {MAX_INPUT_BYTES}-byte limit")
        return raw


@dataclass(frozen=True, slots=True)
class InferenceResult:
    model: str
    backend: str
    output: str
    score: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "backend": self.backend, "output": self.output,
                               "details": self.details}
        if self.score is not None:
            out["score"] = self.score
        return out


class Backend(Protocol):
    name: str

    def models(self) -> list[str]:
        """The model names this backend serves (the first is its default)."""

    def infer(self, request: InferenceRequest, on_done: Callable[[InferenceResult], None],
              on_error: Callable[[str], None]) -> None:
        """Start the work; exactly one of the callbacks runs, now or later."""


class SyncBackend:
    """A backend whose ``run(request)`` computes the answer where it is called (and may block)."""

    name = "sync"

    def prepare(self) -> None:
        """Load what the first call would otherwise wait for (a model); may block. Errors are left for a call."""

    def run(self, request: InferenceRequest) -> InferenceResult:
        raise NotImplementedError

    def infer(self, request: InferenceRequest, on_done: Callable[[InferenceResult], None],
              on_error: Callable[[str], None]) -> None:
        try:
            result = self.run(request)
        except InferenceError as exc:
            on_error(str(exc))
            return
        on_done(result)


class MagikaBackend(SyncBackend):
    """The embedded default: Magika's content-type model (loaded by ``prepare`` or on first use, then kept)."""

    name = "embedded"

    def __init__(self) -> None:
        self._magika: Any = None
        self._loading = threading.Lock()  # two worker threads' first calls load it once

    def prepare(self) -> None:
        try:
            self._model()
        except InferenceError:
            pass  # said to the first caller

    def _model(self) -> Any:
        with self._loading:
            if self._magika is None:
                try:
                    from magika import Magika
                except ImportError:
                    raise InferenceError("the embedded model needs the magika package: pip install "
                                         "'p2pnode[ai]'") from None
                self._magika = Magika()
        return self._magika

    def models(self) -> list[str]:
        return ["magika"] if _magika_installed() else []

    def run(self, request: InferenceRequest) -> InferenceResult:
        if request.model not in (None, "", "magika"):
            raise InferenceError(f"model {request.model!r} is not here: the embedded backend serves magika")
        magika = self._model()
        result = magika.identify_bytes(request.data())
        if not result.ok:
            raise InferenceError(f"the model could not classify the input: {result.status}")
        output, network = result.prediction.output, result.prediction.dl
        return InferenceResult(
            model="magika", backend=self.name, output=str(output.label), score=float(result.score),
            details={"model_version": magika.get_model_name(), "description": output.description,
                     "mime_type": output.mime_type, "group": output.group, "is_text": bool(output.is_text),
                     # "undefined" when the input was too short for the network and rules decided
                     "network_label": str(network.label),
                     "overwrite_reason": str(getattr(result.prediction.overwrite_reason, "value", ""))})


def _magika_installed() -> bool:
    try:
        import magika  # noqa: F401
    except ImportError:
        return False
    return True
