"""The embedded backend's model is loaded before the first call when a node offers run_inference."""

from __future__ import annotations

import asyncio
import time

from p2pnode.mcp.inference import InferenceRequest, MagikaBackend
from p2pnode.mcp.runtime import ThreadedBackend


def test_prepare_loads_the_model_off_the_event_loop_and_once():
    backend = MagikaBackend()
    threaded = ThreadedBackend(backend)

    async def main() -> tuple[float, list]:
        started = time.perf_counter()
        threaded.prepare()  # returns at once: the loading runs on a worker thread
        returned = time.perf_counter() - started
        answers: list = []
        done = asyncio.Event()
        for text in ("import os\nprint(os.getcwd())\n", '{"a": [1, 2, 3]}'):
            threaded.infer(InferenceRequest(text), lambda r: (answers.append(r), len(answers) == 2 and done.set()),
                           lambda e: (answers.append(e), done.set()))
        await asyncio.wait_for(done.wait(), 60)
        return returned, answers

    try:
        returned, answers = asyncio.run(main())
    finally:
        threaded.close()
    model = backend._magika
    assert returned < 0.1 and model is not None
    assert sorted(a.output for a in answers) == ["json", "python"]
    assert backend._model() is model  # loaded once, kept
