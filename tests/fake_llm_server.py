"""A minimal OpenAI-compatible chat-completions server for tests, on loopback only.

    python tests/fake_llm_server.py [--port 0]     # prints "READY http://127.0.0.1:PORT/v1"

Its "models" are deterministic rules, chosen by the request's model name:

* generators — ``gen``: answers ``{"paraphrase": "a photo of <caption> (k)", "negation": "no
  <caption> (k)"}`` where k counts the generator calls for that caption (so a regeneration
  differs); ``gen-fenced``: the same object inside a code fence with prose around it;
  ``gen-prose``: never JSON; ``gen-copy``: echoes the caption as both;
* validators — ``val-yes``, ``val-no``, ``val-babble`` ("Maybe."), ``val-reject-first``: "No"
  the first time it judges each (caption, question), then "Yes.";
* failures — ``garbage``: HTTP 200 with an HTML body; ``no-choices``: JSON without choices;
  ``missing``: HTTP 404 like Ollama for an unknown model; ``flaky-<model>``: HTTP 503 on the
  first request for each caption, then behaves as ``<model>``; ``slow-<seconds>-<model>``:
  sleeps, then behaves as ``<model>``; ``error-500``: HTTP 500 on every request; ``hang``:
  never answers (holds the connection for an hour); ``nonsense``: a well-formed chat completion
  whose text is neither JSON nor a verdict, for every request.

``GET /stats`` returns call counts (``{"calls": n, "by_model": {...}, "json_mode_calls": n}``,
the last = requests asking for a JSON object); ``POST /reset`` clears counts and per-caption state. Tests run it as a subprocess (:func:`running`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

_lock = threading.Lock()
_calls: Counter = Counter()
_seen: Counter = Counter()  # (model, caption, question) -> times seen
_json_mode_calls = Counter()  # requests that asked for response_format json_object
HANG_S = 3600.0


def _quoted(text: str, label: str) -> str:
    match = re.search(label + r': ("(?:[^"\\]|\\.)*")', text)
    return json.loads(match.group(1)) if match else ""


def _count(key: tuple) -> int:
    with _lock:
        _seen[key] += 1
        return _seen[key]


def answer(model: str, messages: list[dict]) -> tuple[int, str]:
    """(HTTP status, body) for one chat request."""
    user = messages[-1]["content"] if messages else ""
    caption = _quoted(user, "Caption") or _quoted(user, "Caption A")
    slow = re.match(r"slow-([\d.]+)-(.+)", model)
    if slow:
        time.sleep(float(slow.group(1)))
        model = slow.group(2)
    if model.startswith("flaky-"):
        model = model[len("flaky-"):]
        if _count(("flaky", model, caption)) == 1:
            return 503, json.dumps({"error": {"message": "model is loading"}})
    if model == "garbage":
        return 200, "<html><body>502 Bad Gateway (but with status 200)</body></html>"
    if model == "no-choices":
        return 200, json.dumps({"object": "chat.completion", "choices": []})
    if model == "error-500":
        return 500, json.dumps({"error": {"message": "internal server error"}})
    if model == "hang":
        time.sleep(HANG_S)  # the client's timeout must end this, not the server
        return 504, json.dumps({"error": {"message": "gave up"}})
    if model == "missing":
        return 404, json.dumps({"error": {"message": f'model "{model}" not found, try pulling it first'}})
    content = _content(model, user, caption)
    return 200, json.dumps({"object": "chat.completion", "model": model, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})


def _content(model: str, user: str, caption: str) -> str:
    if model == "nonsense":
        return "Purple elephants compile quietly beneath the semicolon."
    if model.startswith("gen"):
        k = _count(("gen", caption))
        proposal = json.dumps({"paraphrase": f"a photo of {caption} ({k})", "negation": f"no {caption} ({k})"})
        if model == "gen-fenced":
            return f"Sure! Here you go:\n```json\n{proposal}\n```\nHope this helps."
        if model == "gen-prose":
            return "Here is a paraphrase and a negation of your caption, in plain words."
        if model == "gen-copy":
            return json.dumps({"paraphrase": caption, "negation": caption})
        return proposal
    question = "negation" if "contradict" in user else "paraphrase"
    if model == "val-reject-first":
        return "No." if _count(("val", caption, question)) == 1 else "Yes."
    return {"val-yes": "Yes, it does.", "val-no": "No", "val-babble": "Maybe."}.get(model, "Yes")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: str, kind: str = "application/json") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/stats":
            with _lock:
                stats = {"calls": sum(_calls.values()), "by_model": dict(_calls),
                         "json_mode_calls": sum(_json_mode_calls.values())}
            self._send(200, json.dumps(stats))
        else:
            self._send(404, json.dumps({"error": "not found"}))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") == "/reset":
            with _lock:
                _calls.clear()
                _seen.clear()
                _json_mode_calls.clear()
            self._send(200, "{}")
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, json.dumps({"error": f"no route {self.path}"}))
            return
        try:
            body = json.loads(raw)
            model, messages = body["model"], body["messages"]
        except (ValueError, KeyError, TypeError):
            self._send(400, json.dumps({"error": "bad request"}))
            return
        with _lock:
            _calls[model] += 1
            _json_mode_calls[model] += body.get("response_format") == {"type": "json_object"}
        status, text = answer(model, messages)
        self._send(status, text, "text/html" if text.startswith("<") else "application/json")


def serve(port: int = 0) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1 (``port`` 0 = any free port); call ``serve_forever``."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


@contextlib.contextmanager
def running(timeout_s: float = 20.0) -> Iterator[str]:
    """Run the server as a subprocess; yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        line = proc.stdout.readline()
        if not line.startswith("READY ") or time.monotonic() > deadline:
            raise RuntimeError(f"fake LLM server did not start (said {line!r})")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def stats(url: str) -> dict:
    """The running server's call counts (see the module docstring); ``url`` is its base URL."""
    with urllib.request.urlopen(url.replace("/v1", "/stats")) as response:
        return json.loads(response.read())


def reset(url: str) -> None:
    """Clear the running server's call counts and per-caption state."""
    urllib.request.urlopen(urllib.request.Request(url.replace("/v1", "/reset"), data=b"{}")).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = serve(args.port)
    print(f"READY http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
