"""The LLM backend against a real OpenAI-compatible HTTP server process on loopback.

The server (tests/fake_llm_server.py) runs deterministic rule "models": see its docstring.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

import fake_llm_server
from engine.captions import NEGATION, PARAPHRASE, CaptionBackendError, make_backend
from engine.captions import prompts
from engine.captions.llm import LLMBackend, LLMConfig

CAPTION = "a dog on a bench"


@pytest.fixture
def url(llm_url):
    return llm_url


def calls(url: str) -> dict:
    return fake_llm_server.stats(url)["by_model"]


def backend(url: str, generator: str = "gen", validator: str = "val-yes", **cfg) -> LLMBackend:
    cfg = {"backoff_s": 0.01, **cfg}
    return make_backend("llm", base_url=url, generator_model=generator, validator_model=validator, **cfg)


def test_happy_path_two_stages(url):
    g = backend(url).generate(CAPTION)
    (p,), (n,) = g.paraphrases, g.negations
    assert (p.text, p.kind, p.backend, p.accepted, p.stage, p.attempt) == \
        ("a photo of a dog on a bench (1)", "llm", "llm:gen", True, "generator", 1)
    assert (n.text, n.accepted) == ("no a dog on a bench (1)", True)
    assert calls(url) == {"gen": 1, "val-yes": 2}  # one proposal, one verdict per role


def test_rejected_outputs_are_regenerated_and_kept(url):
    g = backend(url, validator="val-reject-first").generate(CAPTION)
    assert [(p.text, p.accepted, p.stage, p.attempt) for p in g.paraphrases] == [
        ("a photo of a dog on a bench (1)", False, "generator", 1),
        ("a photo of a dog on a bench (2)", True, "regenerator", 2)]
    assert g.first(PARAPHRASE).attempt == 2 and g.first(NEGATION).text == "no a dog on a bench (2)"
    assert calls(url) == {"gen": 2, "val-reject-first": 4}


def test_regeneration_tells_the_generator_what_was_rejected():
    messages = prompts.generator_messages(CAPTION, [prompts.rejection_note(NEGATION, "a cat")])
    assert json.dumps(CAPTION) in messages[-1]["content"]
    assert "'a cat' was rejected" in messages[-1]["content"]


def test_tries_are_bounded_and_exhaustion_is_not_an_error(url):
    g = backend(url, validator="val-no", max_tries=2).generate(CAPTION)
    assert [p.accepted for p in g.paraphrases] == [False, False]
    assert g.first(PARAPHRASE) is None and g.first(NEGATION) is None
    assert calls(url) == {"gen": 2, "val-no": 4}


def test_a_babbling_validator_does_not_accept_and_a_copy_is_never_asked(url):
    g = backend(url, validator="val-babble", max_tries=1).generate(CAPTION)
    assert [p.accepted for p in g.paraphrases + g.negations] == [False, False]
    g = backend(url, generator="gen-copy", max_tries=1).generate(CAPTION)
    assert [p.accepted for p in g.paraphrases + g.negations] == [False, False]
    assert "val-yes" not in calls(url)  # a copy of the caption is rejected without a validator


def test_json_in_a_code_fence_is_accepted_and_validation_can_be_off(url):
    g = backend(url, generator="gen-fenced", validate=False).generate(CAPTION)
    assert g.first(PARAPHRASE).text == "a photo of a dog on a bench (1)"
    assert g.first(PARAPHRASE).accepted is None
    assert calls(url) == {"gen-fenced": 1}


def test_a_generator_that_never_answers_json_fails_clearly(url):
    with pytest.raises(CaptionBackendError, match="gen-prose.*no JSON object.*in 2 tries") as info:
        backend(url, generator="gen-prose", max_tries=2).generate(CAPTION)
    assert not info.value.fatal  # the next caption may work
    assert calls(url) == {"gen-prose": 2}


@pytest.mark.parametrize("model, message", [
    ("garbage", "did not answer with JSON .*<html>"),
    ("no-choices", "without choices\\[0\\].message.content"),
    ("missing", "HTTP 404.*ollama pull missing"),
])
def test_garbage_from_the_server_is_a_fatal_error_naming_the_url(url, model, message):
    with pytest.raises(CaptionBackendError, match=message) as info:
        backend(url, generator=model).generate(CAPTION)
    assert info.value.fatal and f"{url}/chat/completions" in str(info.value)


def test_transient_errors_are_retried_with_exponential_back_off(url):
    b = backend(url, generator="flaky-gen", backoff_s=0.05)
    sleeps: list[float] = []
    b.client.sleep = sleeps.append
    assert b.generate(CAPTION).first(PARAPHRASE).accepted
    assert sleeps == [0.05]  # one 503, then success
    b = backend(url, generator="slow-1-gen", timeout_s=0.2, retries=2, backoff_s=0.01)
    sleeps.clear()
    b.client.sleep = sleeps.append
    start = time.monotonic()
    with pytest.raises(CaptionBackendError, match=r"did not answer within 0\.2 s \(3 tries\)") as info:
        b.generate(CAPTION)
    assert time.monotonic() - start < 2.0 and sleeps == [0.01, 0.02]
    assert not info.value.fatal


def test_an_unreachable_server_fails_fast_with_what_to_do():
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = make_backend("llm", base_url=f"http://127.0.0.1:{port}/v1")
    start = time.monotonic()
    with pytest.raises(CaptionBackendError, match=f"cannot reach the LLM server at "
                                                  f"http://127.0.0.1:{port}/v1.*--base-url") as info:
        b.generate(CAPTION)
    assert info.value.fatal and time.monotonic() - start < 1.0
    with pytest.raises(CaptionBackendError, match=str(port)):
        asyncio.run(b.agenerate(CAPTION))


def test_agenerate_keeps_the_event_loop_free(url):
    b = backend(url, generator="slow-0.4-gen")

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        generations = await b.agenerate(CAPTION)
        task.cancel()
        return generations, ticks

    generations, ticks = asyncio.run(main())
    assert generations.first(NEGATION).accepted and ticks >= 20  # the loop ran during the 0.4 s


def test_config_defaults_follow_the_paper_and_bad_settings_fail():
    cfg = LLMConfig()
    assert (cfg.base_url, cfg.generator_model, cfg.validator_model) == \
        ("http://127.0.0.1:11434/v1", "phi4", "mistral")
    assert LLMBackend(cfg).identity == f"llm/phi4/mistral/prompts-{prompts.PROMPT_VERSION}/tries-3"
    with pytest.raises(ValueError, match="must start with http"):
        make_backend("llm", base_url="127.0.0.1:11434")
    with pytest.raises(ValueError, match="unknown setting.*model"):
        make_backend("llm", model="phi4")


def test_reply_parsers():
    assert prompts.parse_verdict("Yes.") is True and prompts.parse_verdict("**No**, because") is False
    assert prompts.parse_verdict("Maybe") is None and prompts.parse_verdict("") is None
    assert prompts.parse_proposal('```json\n{"paraphrase": " a  b ", "negation": "c"}\n```') == \
        {"paraphrase": "a b", "negation": "c"}
    assert prompts.parse_proposal('{"paraphrase": "a"}') is None
    assert prompts.parse_proposal("not json {") is None
