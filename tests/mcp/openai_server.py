"""A minimal OpenAI-compatible chat-completions server for tests of the client backend (the backend under
test is the client; a real llama.cpp server is too heavy for the suite). It answers each prompt with its
words in reverse order, after ``delay`` seconds, and records what it was sent."""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIServer:
    def __init__(self, delay: float = 0.0, status: int = 200, api_key: str = ""):
        self.delay = delay
        self.status = status
        self.api_key = api_key
        self.requests: list[dict] = []
        self.arrivals: queue.Queue[str] = queue.Queue()  # the model named by each request, as it arrives
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body,
                                       "authorization": self.headers.get("Authorization", "")})
                outer.arrivals.put(body.get("model", ""))
                if outer.api_key and self.headers.get("Authorization") != f"Bearer {outer.api_key}":
                    return self._send(401, {"error": {"message": "bad key"}})
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "no such endpoint"}})
                if outer.status != 200:
                    return self._send(outer.status, {"error": {"message": "overloaded"}})
                time.sleep(outer.delay)
                prompt = body["messages"][-1]["content"]
                answer = " ".join(reversed(prompt.split()))
                self._send(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": answer}}],
                                 "usage": {"prompt_tokens": len(prompt.split()),
                                           "completion_tokens": len(answer.split())}})

            def _send(self, status, data):
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> OpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
