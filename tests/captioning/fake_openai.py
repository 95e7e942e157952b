"""A local OpenAI-compatible chat server on 127.0.0.1 that misbehaves on purpose (fault injection).

Captions follow the prompt: they name the group's marker only when the prompt carried it (a template
that leaves out the page text gets captions that name nothing). A judge request ("Captions 1: ...
Captions 2: ...") is answered by ``judge_verdict``.

Each request is matched to a group by a ``[[name]]`` marker in its text (tests put it in the alt text),
and answered with the next behaviour scripted for that group (then ``ok`` once the script runs out):

ok, 500, 429, timeout (answers after ``slow_s``), malformed (HTTP 200 with a non-JSON body),
not_json (a completion whose content is not JSON), wrong_count, empty (an empty caption), evil (markup
in a caption, for escaping tests),
refuse (400 naming an image limit), die (drops the connection and stops the whole server),
anonymous (captions that never name the reply's subject), length (a reply cut at max_tokens:
``finish_reason=length``, content cut in half).

``GET /v1/models`` lists ``models`` (default ``["fake"]``); with ``api_key`` set, a request carrying
another key gets a 401, as ``vllm serve --api-key`` answers.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MARKER = re.compile(r"\[\[(\w+)\]\]")
EVIL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


JUDGE_CUE = "Captions 1:"


def texts_of(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return " ".join(p.get("text", "") for p in content if p.get("type") == "text")


def judge_verdict(text: str, marker: str) -> int:
    """The fake judge's honest rule: the caption set that names the group's subject (its marker, found
    in the page text it was given) in more captions is better; on a tie it picks set 1, a position bias
    that the real judge's swapped second question cancels."""
    first, _, second = text.partition(JUDGE_CUE)[2].partition("Captions 2:")
    mentions = [sum(marker in line for line in block.splitlines()) for block in (first, second)]
    return 2 if mentions[1] > mentions[0] else 1


class FakeOpenAI:
    def __init__(
        self,
        script: dict[str, list[str]] | None = None,
        slow_s: float = 2.0,
        image_limit: int = 8,
        models: tuple[str, ...] = ("fake",),
        api_key: str | None = None,
    ):
        self.models = list(models)
        self.api_key = api_key
        self.model_lists = 0  # GET /v1/models requests answered
        self.script = defaultdict(list, {k: list(v) for k, v in (script or {}).items()})
        self.slow_s = slow_s
        self.image_limit = image_limit
        self.log: list[tuple[str, str]] = []  # (group marker, behaviour), in arrival order
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def requests_for(self, marker: str) -> int:
        return sum(1 for m, _ in self.log if m == marker)

    def _next(self, body: dict[str, Any]) -> tuple[str, str, int]:
        content = body["messages"][-1]["content"]
        texts = texts_of(body)
        n = sum(1 for p in content if p.get("type") == "image_url")
        match = MARKER.search(texts)
        marker = match.group(1) if match else "?"
        with self.lock:
            behaviour = self.script[marker].pop(0) if self.script[marker] else "ok"
            self.log.append((marker, behaviour))
            self.bodies.append(body)
        return marker, behaviour, n

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _refused_key(self) -> bool:
                if fake.api_key is None or self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                    return False
                error = {"error": {"message": "Unauthorized", "type": "auth", "code": 401}}
                self._send(401, json.dumps(error).encode())
                return True

            def do_GET(self) -> None:
                if self._refused_key():
                    return
                if self.path.rstrip("/") != "/v1/models":
                    return self._send(404, b'{"error": {"message": "not found"}}')
                with fake.lock:
                    fake.model_lists += 1
                data = [{"id": m, "object": "model", "owned_by": "fake"} for m in fake.models]
                self._send(200, json.dumps({"object": "list", "data": data}).encode())

            def do_POST(self) -> None:
                if self._refused_key():
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                marker, behaviour, n = fake._next(body)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    self._answer(marker, behaviour, n, body)

            def _answer(self, marker: str, behaviour: str, n: int, body: dict[str, Any]) -> None:
                if behaviour == "die":
                    self.close_connection = True
                    self.connection.close()
                    threading.Thread(target=fake.stop, daemon=True).start()
                    return
                if behaviour == "timeout":
                    time.sleep(fake.slow_s)
                if behaviour in ("500", "429"):
                    error = {
                        "error": {
                            "message": f"injected {behaviour}",
                            "type": "injected",
                            "code": int(behaviour),
                        }
                    }
                    return self._send(int(behaviour), json.dumps(error).encode())
                if behaviour == "refuse" or n > fake.image_limit:
                    message = f"At most {fake.image_limit} image(s) may be provided in one prompt."
                    error = {"error": {"message": message, "type": "BadRequestError", "code": 400}}
                    return self._send(400, json.dumps(error).encode())
                if behaviour == "malformed":
                    return self._send(200, b'{"id": "x", "choices": [ this is not json')
                if JUDGE_CUE in texts_of(body):
                    return self._complete(body, json.dumps({"better": judge_verdict(texts_of(body), marker)}))
                count = n + 1 if behaviour == "wrong_count" else n
                captions = [f"{marker} picture {i + 1} of {n}" for i in range(count)]
                if behaviour == "empty":
                    captions[0] = "   "
                if behaviour == "evil":
                    captions[0] = EVIL
                if behaviour == "anonymous":  # the reply names a subject that its captions never mention
                    captions = [f"a picture, {i + 1} of {n}" for i in range(count)]
                reply = {"subject": marker, "captions": captions, "group_caption": f"{marker} group of {n}"}
                content = "sure! here you go" if behaviour == "not_json" else json.dumps(reply)
                if behaviour == "length":
                    content = content[: len(content) // 2]
                self._complete(body, content, "length" if behaviour == "length" else "stop")

            def _complete(self, body: dict[str, Any], content: str, finish_reason: str = "stop") -> None:
                completion = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                self._send(200, json.dumps(completion).encode())

        return Handler
