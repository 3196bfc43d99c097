"""Fixtures for the eval tests: the offline tiny tokenizer, and a real OpenAI-compatible HTTP server on
127.0.0.1 that answers from a script (the only fake: it stands in for a GPU inference server)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from dipo_tools.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


class ScriptedServer:
    """``/v1/chat/completions`` and ``/v1/completions``; ``chat(body) -> message dict`` and
    ``complete(body) -> (text, token_ids | None)`` are set by each test. Requests are recorded."""

    def __init__(self) -> None:
        self.chat: Callable[[dict], dict] = lambda body: {"role": "assistant", "content": "ok"}
        self.complete: Callable[[dict], tuple[str, list[int] | None]] = lambda body: ("ok", None)
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # keep pytest output clean
                pass

            def _send(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append((self.path, body))
                usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                try:
                    if self.path.endswith("/chat/completions"):
                        msg = server.chat(body)
                        self._send(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                                         "model": body.get("model"), "usage": usage,
                                         "choices": [{"index": 0, "message": msg, "logprobs": None,
                                                      "finish_reason": "tool_calls" if msg.get("tool_calls") else "stop"}]})
                    elif self.path.endswith("/completions"):
                        text, ids = server.complete(body)
                        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
                        if ids is not None and body.get("return_tokens_as_token_ids"):
                            choice["logprobs"] = {"tokens": [f"token_id:{i}" for i in ids],
                                                  "token_logprobs": [-0.5] * len(ids)}
                        self._send(200, {"id": "cmpl-1", "object": "text_completion", "created": 0,
                                         "model": body.get("model"), "usage": usage, "choices": [choice]})
                    else:
                        self._send(404, {"error": f"no route {self.path}"})
                except Exception as e:  # surface script bugs as HTTP 500 with the message
                    self._send(500, {"error": repr(e)})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_server():
    srv = ScriptedServer()
    yield srv
    srv.close()
