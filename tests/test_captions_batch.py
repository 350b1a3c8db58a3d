"""Batch generation: captions file -> triples file, cache and resume, failures, bad input, CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import fake_llm_server

from engine.captions import make_backend
from engine.captions.batch import generate_triples, read_captions
from engine.captions.rules import RulesBackend
from engine.cli.commands import main
from engine.data.triples import read_triples
from engine.events import Done, Error, Log, Progress, new_stop_flag

CAPTIONS = ["a large red circle and a small blue square", "A zebra is standing in an open field.",
            "A man is riding a horse.", "a red circle on the left"]


class CountingRules(RulesBackend):
    """The rules backend, counting calls (thread-safe) and optionally setting a stop flag."""

    def __init__(self, stop_after: int = 0, stop=None):
        super().__init__()
        self.calls, self._lock = 0, threading.Lock()
        self.stop_after, self.stop = stop_after, stop

    def generate(self, caption):
        with self._lock:
            self.calls += 1
            if self.stop is not None and self.calls >= self.stop_after:
                self.stop.set()
        return super().generate(caption)


def write_csv(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text(header + "\n" + "".join(line + "\n" for line in lines))
    return path


def captions_csv(tmp_path: Path, captions=CAPTIONS) -> Path:
    lines = [f'img{i}.png,"{c}",set{i % 2}' for i, c in enumerate(captions)]
    return write_csv(tmp_path / "captions.csv", "image,caption,source", lines)


def run(*args, **kwargs) -> tuple[list, object]:
    events = list(generate_triples(*args, **kwargs))
    return events, events[-1]


def test_round_trip_through_read_triples_keeps_extra_columns(tmp_path):
    events, done = run(captions_csv(tmp_path), tmp_path / "triples.csv", RulesBackend())
    assert isinstance(done, Done) and done.result.rows == 4 and done.result.failed == 0
    triples = read_triples(tmp_path / "triples.csv")
    assert [t.caption for t in triples] == CAPTIONS
    assert triples[0].image == tmp_path / "img0.png"
    assert triples[0].paraphrase == "a big red circle and a little blue square"
    assert triples[0].negation == "a large red circle and no small blue square"
    assert triples[1].negation == "No zebra is standing in an open field."
    header = (tmp_path / "triples.csv").read_text().splitlines()[0]
    assert header == "image,caption,paraphrase,negation,source"
    assert isinstance(events[-2], Log) and any(isinstance(e, Progress) and e.done == 4 for e in events)
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "triples.csv.failed.csv").exists()


def test_jsonl_in_and_out(tmp_path):
    src = tmp_path / "captions.jsonl"
    src.write_text("".join(json.dumps({"image_path": f"i{k}.png", "caption": c, "id": k}) + "\n"
                           for k, c in enumerate(CAPTIONS[:2])))
    _, done = run(src, tmp_path / "out.jsonl", RulesBackend())
    assert done.result.rows == 2
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows[1]["image"] == "i1.png" and rows[1]["id"] == 1
    assert [t.negation for t in read_triples(tmp_path / "out.jsonl")][1] == "No zebra is standing in an open field."


def test_a_second_run_is_served_from_the_cache(tmp_path):
    backend = CountingRules()
    run(captions_csv(tmp_path, CAPTIONS + CAPTIONS[:1]), tmp_path / "a.csv", backend)
    assert backend.calls == 4  # a repeated caption is generated once
    again = CountingRules()
    _, done = run(captions_csv(tmp_path), tmp_path / "b.csv", again)
    assert again.calls == 0 and done.result.cached == 4
    assert (tmp_path / "a.csv").read_text().splitlines()[:5] == (tmp_path / "b.csv").read_text().splitlines()
    _, done = run(captions_csv(tmp_path), tmp_path / "c.csv", again, use_cache=False)
    assert again.calls == 4


def test_a_stopped_run_writes_nothing_and_resumes_where_it_was(tmp_path):
    many = [f"a red circle and a blue square number {k}" for k in range(12)]
    stop = new_stop_flag()
    first = CountingRules(stop_after=3, stop=stop)
    events, done = run(captions_csv(tmp_path, many), tmp_path / "out.csv", first, workers=1, stop=stop)
    assert done.stopped and not (tmp_path / "out.csv").exists()
    assert "run again to resume" in [e for e in events if isinstance(e, Log)][-1].message
    second = CountingRules()
    _, done = run(captions_csv(tmp_path, many), tmp_path / "out.csv", second)
    assert not done.stopped and done.result.rows == 12
    assert second.calls == 12 - first.calls and done.result.cached == first.calls


def server_calls(url: str) -> int:
    return fake_llm_server.stats(url)["calls"]


def test_llm_batch_with_workers_then_zero_calls_on_the_second_run(tmp_path, llm_url):
    backend = make_backend("llm", base_url=llm_url, generator_model="gen", validator_model="val-yes")
    src = captions_csv(tmp_path, [f"batch caption {k}" for k in range(8)])
    before = server_calls(llm_url)
    _, done = run(src, tmp_path / "out.csv", backend, workers=4)
    assert done.result.rows == 8 and server_calls(llm_url) - before == 8 * 3
    triples = read_triples(tmp_path / "out.csv")
    assert triples[5].paraphrase == "a photo of batch caption 5 (1)"
    before = server_calls(llm_url)
    _, done = run(src, tmp_path / "again.csv", backend, workers=4)
    assert server_calls(llm_url) == before and done.result.cached == 8
    # another validator model is another cache key
    other = make_backend("llm", base_url=llm_url, generator_model="gen", validator_model="val-reject-first")
    run(src, tmp_path / "other.csv", other, workers=2)
    assert server_calls(llm_url) > before


def test_failed_rows_are_reported_and_written_beside_the_output(tmp_path, llm_url):
    src = write_csv(tmp_path / "c.csv", "image,caption", ["a.png,rejected caption", "b.png,", "c.png,  "])
    backend = make_backend("llm", base_url=llm_url, generator_model="gen", validator_model="val-no",
                           max_tries=2)
    events, done = run(src, tmp_path / "out.csv", backend)
    assert done.result.rows == 0 and done.result.failed == 3
    reasons = {f["line"]: f["reason"] for f in done.result.failures}
    assert reasons == {2: "no accepted paraphrase: the validator rejected all 2 proposals",
                       3: "empty caption", 4: "empty caption"}
    report = (tmp_path / "out.csv.failed.csv").read_text().splitlines()
    assert report[0] == "line,image,caption,reason"
    assert report[1].startswith("2,a.png,rejected caption,no accepted")
    assert any(isinstance(e, Log) and e.level == "warning" and "3 rows failed" in e.message for e in events)
    # a clean run over the same output removes the stale report
    run(write_csv(tmp_path / "ok.csv", "image,caption", ["a.png,a cat on a mat"]), tmp_path / "out.csv",
        RulesBackend())
    assert not (tmp_path / "out.csv.failed.csv").exists()


def test_an_unreachable_server_stops_the_batch_with_one_clear_error(tmp_path):
    backend = make_backend("llm", base_url="http://127.0.0.1:9/v1")
    _, error = run(captions_csv(tmp_path), tmp_path / "out.csv", backend, workers=2)
    assert isinstance(error, Error) and error.kind == "backend"
    assert "http://127.0.0.1:9/v1" in error.message and "run again to resume" in error.message
    assert not (tmp_path / "out.csv").exists()


def test_bad_input_names_the_file_and_line(tmp_path):
    no_caption = write_csv(tmp_path / "a.csv", "image,text", ["x.png,a dog"])
    _, error = run(no_caption, tmp_path / "o.csv", RulesBackend())
    assert isinstance(error, Error) and error.message == f"{no_caption}:1: no 'caption' column (columns: image, text)"
    extra_field = write_csv(tmp_path / "b.csv", "image,caption", ["x.png,a dog", "y.png,a cat,oops"])
    _, error = run(extra_field, tmp_path / "o.csv", RulesBackend())
    assert error.message == f"{extra_field}:3: 3 fields, the header has 2"
    open_quote = write_csv(tmp_path / "c.csv", "image,caption", ["x.png,a dog", 'y.png,"a cat'])
    _, error = run(open_quote, tmp_path / "o.csv", RulesBackend())
    assert error.message.startswith(f"{open_quote}:3: malformed CSV")
    bad_json = tmp_path / "d.jsonl"
    bad_json.write_text('{"caption": "a dog"}\n{"caption": oops}\n')
    _, error = run(bad_json, tmp_path / "o.csv", RulesBackend())
    assert error.message.startswith(f"{bad_json}:2: not valid JSON")
    _, error = run(tmp_path / "missing.csv", tmp_path / "o.csv", RulesBackend())
    assert "captions file not found" in error.message
    assert read_captions(write_csv(tmp_path / "e.csv", "caption", ["a dog"]))[0][0].image == ""


def test_the_command_line(tmp_path, capsys):
    src = captions_csv(tmp_path)
    assert main(["generate", "--in", str(src), "--out", str(tmp_path / "t.csv"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"wrote 4 triples to {tmp_path / 't.csv'}" in out
    assert len(read_triples(tmp_path / "t.csv")) == 4
    assert main(["generate", "--in", str(src), "--out", str(tmp_path / "t.csv"), "--base-url", "http://x"]) == 2
    assert "--base-url only apply to --backend llm" in capsys.readouterr().err
    assert main(["generate", "--in", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "t.csv")]) == 1
    assert "captions file not found" in capsys.readouterr().err
    src = write_csv(tmp_path / "f.csv", "image,caption", ["a.png,a dog on a bench", "b.png,"])
    assert main(["generate", "--in", str(src), "--out", str(tmp_path / "f_out.csv"), "--quiet"]) == 1
    assert "line 3: empty caption" in capsys.readouterr().out  # a failed row fails the command


def test_the_command_line_drives_an_llm_server(tmp_path, capsys, llm_url):
    src = captions_csv(tmp_path, ["cli caption one", "cli caption two"])
    code = main(["generate", "--in", str(src), "--out", str(tmp_path / "t.csv"), "--backend", "llm",
                 "--base-url", llm_url, "--generator-model", "gen", "--validator-model", "val-yes",
                 "--workers", "2", "--cache", str(tmp_path / "cache.sqlite"), "--quiet"])
    assert code == 0 and (tmp_path / "cache.sqlite").is_file()
    assert read_triples(tmp_path / "t.csv")[1].negation == "no cli caption two (1)"
    code = main(["generate", "--in", str(src), "--out", str(tmp_path / "t.csv"), "--backend", "llm",
                 "--base-url", "http://127.0.0.1:9/v1", "--quiet", "--no-cache"])
    assert code == 1 and "cannot reach the LLM server at http://127.0.0.1:9/v1" in capsys.readouterr().err
