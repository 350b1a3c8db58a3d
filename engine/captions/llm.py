"""The paper's two-stage pipeline over an OpenAI-compatible chat API (Ollama, llama.cpp, vLLM).

Stage 1, the generator, proposes a paraphrase and a negation as JSON; stage 2, the validator,
answers yes/no for each. A rejected output is regenerated (with the rejection as feedback) up to
``max_tries`` proposals. Every proposal is kept, tagged with its stage, attempt and verdict, so
the app can show rejected ones too; a batch job writes the first accepted one.

HTTP is the standard library's (no new dependency): ``urllib`` with a timeout (30 s by default),
one retry with back-off on a timeout, dropped connection, 429 or 5xx, and a
:class:`CaptionBackendError` that names the URL and what to do otherwise. The pipeline itself is
written once, free of I/O, as a generator of chat calls; ``generate`` answers them in the
calling thread, ``agenerate`` in worker threads, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Generator, Optional

from . import prompts
from .base import NEGATION, PARAPHRASE, CaptionBackendError, Generation, Generations

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class LLMConfig:
    """Where the server is, which models to use and how hard to try. Defaults follow the paper
    (generator phi4, validator mistral) on Ollama's default address."""

    base_url: str = "http://127.0.0.1:11434/v1"
    generator_model: str = "phi4"
    validator_model: str = "mistral"
    max_tries: int = 3  # generator proposals per caption: 1 + regenerations after rejections
    validate: bool = True  # False: skip stage 2 (outputs are then unvalidated, accepted=None)
    temperature: float = 0.7  # > 0 so that a regeneration can differ
    json_mode: bool = True  # ask for response_format json_object (Ollama, llama.cpp, vLLM)
    # per HTTP request; with the one retry below a hung server costs about a minute a caption
    timeout_s: float = 30.0
    retries: int = 1  # extra attempts per request on timeouts, dropped connections, 429, 5xx
    backoff_s: float = 0.5  # first back-off; doubled after each retry
    # sent as "Authorization: Bearer ..." when set (vLLM --api-key); kept out of reprs and logs
    api_key: Optional[str] = field(default=None, repr=False)

    def __post_init__(self):
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"LLM base URL must start with http:// or https://, got {self.base_url!r}")
        if not self.generator_model.strip() or not self.validator_model.strip():
            raise ValueError("LLM generator and validator model names must not be empty")
        if self.max_tries < 1 or self.retries < 0 or self.timeout_s <= 0:
            raise ValueError("max_tries must be >= 1, retries >= 0 and timeout_s > 0")


@dataclass(frozen=True)
class ChatCall:
    """One chat-completions request the pipeline needs answered."""

    model: str
    messages: prompts.Messages
    json_mode: bool = False


@dataclass
class ChatClient:
    """Minimal blocking client of ``POST {base_url}/chat/completions``."""

    config: LLMConfig
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    @property
    def url(self) -> str:
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def complete(self, call: ChatCall) -> str:
        """The assistant message's text; retries transient failures, raises
        :class:`CaptionBackendError` on anything else."""
        cfg = self.config
        body = {"model": call.model, "messages": call.messages, "temperature": cfg.temperature,
                "stream": False}
        if call.json_mode and cfg.json_mode:
            body["response_format"] = {"type": "json_object"}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if cfg.api_key:
            headers["Authorization"] = f"Bearer {cfg.api_key}"
        data = json.dumps(body).encode("utf-8")
        for attempt in range(cfg.retries + 1):
            last = attempt == cfg.retries
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=cfg.timeout_s) as response:
                    raw = response.read()
                return self._content(raw, call.model)
            except urllib.error.HTTPError as exc:
                if exc.code in RETRY_STATUS and not last:
                    self._back_off(attempt)
                    continue
                raise self._http_error(exc, call.model) from None
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, (TimeoutError, socket.timeout)):
                    # refused, unknown host, no route: retrying will not help, fail fast
                    raise CaptionBackendError(
                        f"cannot reach the LLM server at {self.url} ({exc.reason}). Start an "
                        f"OpenAI-compatible server there (e.g. `ollama serve` and `ollama pull "
                        f"{call.model}`), or set the base URL (--base-url) to one that runs.",
                        fatal=True) from None
                if last:
                    raise self._timeout_error() from None
            except (TimeoutError, socket.timeout):
                if last:
                    raise self._timeout_error() from None
            except (ConnectionError, http.client.HTTPException) as exc:  # reset, dropped
                if last:
                    raise CaptionBackendError(f"the LLM server at {self.url} dropped the connection "
                                              f"{cfg.retries + 1} times ({exc!r})") from None
            self._back_off(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _back_off(self, attempt: int) -> None:
        self.sleep(self.config.backoff_s * (2 ** attempt))

    def _timeout_error(self) -> CaptionBackendError:
        cfg = self.config
        return CaptionBackendError(
            f"the LLM server at {self.url} did not answer within {cfg.timeout_s:g} s "
            f"({cfg.retries + 1} tries). Use a smaller or already loaded model, or a longer timeout.")

    def _http_error(self, exc: urllib.error.HTTPError, model: str) -> CaptionBackendError:
        try:
            detail = exc.read(500).decode("utf-8", "replace").strip()
        except OSError:
            detail = ""
        hint = {404: f"check that the base URL ends in /v1 and that model {model!r} is available "
                     f"(Ollama: `ollama pull {model}`)",
                401: "the server wants an API key (api_key)", 403: "the server refused the API key"
                }.get(exc.code, "see the server's log")
        return CaptionBackendError(f"the LLM server at {self.url} answered HTTP {exc.code} "
                                   f"{exc.reason}: {detail[:300]!r}; {hint}.",
                                   fatal=exc.code in (401, 403, 404))

    def _content(self, raw: bytes, model: str) -> str:
        snippet = raw[:200].decode("utf-8", "replace")
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CaptionBackendError(
                f"the server at {self.url} did not answer with JSON (got {snippet!r}); is it an "
                f"OpenAI-compatible server, and does the base URL end in /v1?", fatal=True) from None
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise CaptionBackendError(
                f"the server at {self.url} answered without choices[0].message.content for model "
                f"{model!r} (got {snippet!r}); it is not an OpenAI-compatible chat completion.",
                fatal=True)
        return content


Pipeline = Generator[ChatCall, str, Generations]


class LLMBackend:
    """Generator + validator over an OpenAI-compatible chat server (see the module docstring)."""

    name = "llm"

    def __init__(self, config: Optional[LLMConfig] = None, **overrides):
        self.config = config or LLMConfig(**overrides)
        self.client = ChatClient(self.config)

    @property
    def server(self) -> str:
        """The base URL, for messages that must say which server failed."""
        return self.config.base_url

    @property
    def identity(self) -> str:
        cfg = self.config
        validator = cfg.validator_model if cfg.validate else "none"
        return f"llm/{cfg.generator_model}/{validator}/prompts-{prompts.PROMPT_VERSION}/tries-{cfg.max_tries}"

    def generate(self, caption: str) -> Generations:
        """Blocking: each chat call runs in this thread."""
        pipeline = self._pipeline(caption)
        try:
            call = next(pipeline)
            while True:
                call = pipeline.send(self.client.complete(call))
        except StopIteration as done:
            return done.value

    async def agenerate(self, caption: str) -> Generations:
        """For asyncio apps: each chat call runs in a worker thread; cancelling the task stops
        the pipeline at the next call."""
        pipeline = self._pipeline(caption)
        try:
            call = next(pipeline)
            while True:
                call = pipeline.send(await asyncio.to_thread(self.client.complete, call))
        except StopIteration as done:
            return done.value

    def _pipeline(self, caption: str) -> Pipeline:
        cfg = self.config
        result = Generations(caption)
        if not caption or not caption.strip():
            return result
        backend = f"llm:{cfg.generator_model}"
        missing = {PARAPHRASE, NEGATION}
        feedback: list[str] = []
        unusable: list[str] = []
        for attempt in range(1, cfg.max_tries + 1):
            reply = yield ChatCall(cfg.generator_model, prompts.generator_messages(caption, feedback),
                                   json_mode=True)
            proposal = prompts.parse_proposal(reply)
            if proposal is None:
                unusable.append(reply)
                feedback = [prompts.INVALID_JSON_NOTE]
                continue
            feedback = []
            stage = "generator" if attempt == 1 else "regenerator"
            for role in (PARAPHRASE, NEGATION):
                if role not in missing:
                    continue
                text = proposal[role]
                accepted: Optional[bool] = None
                if " ".join(text.lower().split()) == " ".join(caption.lower().split()):
                    accepted = False  # a copy of the caption is neither
                elif cfg.validate:
                    verdict = yield ChatCall(cfg.validator_model,
                                             prompts.validator_messages(role, caption, text))
                    accepted = prompts.parse_verdict(verdict) is True  # no answer = not accepted
                items = result.paraphrases if role == PARAPHRASE else result.negations
                items.append(Generation(text, role, "llm", backend, accepted, stage, attempt))
                if accepted is False:
                    feedback.append(prompts.rejection_note(role, text))
                else:
                    missing.discard(role)
            if not missing:
                break
        if not result.paraphrases and not result.negations:
            switch = "--no-json-mode" if cfg.json_mode else "--json-mode"
            raise CaptionBackendError(
                f"generator model {cfg.generator_model!r} at {self.client.url} gave no JSON object "
                f"with a paraphrase and a negation in {cfg.max_tries} tries (last reply: "
                f"{unusable[-1][:200]!r}); try another model, or {switch}.")
        return result
