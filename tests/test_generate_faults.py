"""`semclip generate --backend llm` through the real CLI against a failing server (issue 11, item 10).

Every row failing, a hanging server and nonsense replies must end in a non-zero exit, a report of
the failed rows, and an existing --out that holds more good rows left as it was.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from fake_llm_server import stats

from engine.captions import CaptionBackendError, make_backend
from engine.cli.commands import main

GOOD_OUT = ("image,caption,paraphrase,negation\na.png,a dog,a pup,no dog\n"
            "b.png,a cat,a kitty,no cat\nc.png,a cow,a calf,no cow\n")


@pytest.fixture
def url(llm_url):
    return llm_url


def captions(tmp_path: Path, n: int, prefix: str = "a caption") -> Path:
    src = tmp_path / "captions.csv"
    src.write_text("image,caption\n" + "".join(f"i{k}.png,{prefix} {k}\n" for k in range(n)))
    return src


def generate(src: Path, out: Path, url: str, model: str, *extra: str) -> int:
    return main(["generate", "--in", str(src), "--out", str(out), "--backend", "llm",
                 "--base-url", url, "--generator-model", model, "--validator-model", model,
                 "--no-cache", "--quiet", *extra])


@pytest.mark.parametrize("model", ["error-500", "nonsense"])
def test_every_row_failing_exits_1_keeps_the_fuller_out_and_lists_the_rows(tmp_path, url, model, capsys):
    out = tmp_path / "triples.csv"
    out.write_text(GOOD_OUT)
    assert generate(captions(tmp_path, 3), out, url, model) == 1
    assert out.read_text() == GOOD_OUT  # three good rows are not replaced by a header
    said = capsys.readouterr()
    assert f"kept {out} (3 rows)" in said.out + said.err
    with open(tmp_path / "triples.csv.failed.csv", newline="") as f:
        report = list(csv.DictReader(f))
    assert [(r["line"], r["image"], r["caption"]) for r in report] == \
        [("2", "i0.png", "a caption 0"), ("3", "i1.png", "a caption 1"), ("4", "i2.png", "a caption 2")]
    assert all(r["reason"] for r in report)


def test_a_hanging_server_is_abandoned_after_consecutive_failures_naming_it(tmp_path, url, capsys):
    out = tmp_path / "triples.csv"
    out.write_text(GOOD_OUT)
    code = generate(captions(tmp_path, 20), out, url, "hang", "--timeout", "0.3", "--workers", "2",
                    "--max-consecutive-failures", "3")
    err = capsys.readouterr().err
    assert code == 1 and out.read_text() == GOOD_OUT
    assert f"3 captions in a row failed at the LLM server {url}" in err
    assert "did not answer within 0.3 s (2 tries)" in err  # a timeout is retried once
    # the run stopped: at most the captions in flight (2 x workers) beyond the 3 were sent
    assert stats(url)["calls"] <= 2 * (3 + 2 * 2) < 2 * 20


def test_a_partly_failed_run_replaces_only_a_smaller_output_and_keeps_its_rows_aside(tmp_path, capsys):
    src = tmp_path / "c.csv"
    src.write_text("image,caption\na.png,a dog on a bench\nb.png,\nc.png,a red circle\n")
    out = tmp_path / "t.csv"
    out.write_text(GOOD_OUT)  # 3 good rows; the run makes 2 and fails 1
    args = ["generate", "--in", str(src), "--out", str(out), "--quiet", "--no-cache"]
    assert main(args) == 1
    assert out.read_text() == GOOD_OUT
    aside = tmp_path / "t.partial.csv"
    assert len(aside.read_text().splitlines()) == 3 and f"aside to {aside}" in capsys.readouterr().err
    out.write_text(GOOD_OUT.splitlines()[0] + "\na.png,a dog,a pup,no dog\n")  # 1 good row
    assert main(args) == 1
    assert len(out.read_text().splitlines()) == 3 and not aside.exists()
    assert "line 3: empty caption" in capsys.readouterr().out


def test_a_complete_run_exits_0_and_replaces_the_output(tmp_path, url):
    out = tmp_path / "triples.csv"
    out.write_text(GOOD_OUT + "d.png,a hen,a chicken,no hen\n")
    assert generate(captions(tmp_path, 2), out, url, "gen", "--validator-model", "val-yes") == 0
    assert out.read_text().splitlines()[1] == "i0.png,a caption 0,a photo of a caption 0 (1),no a caption 0 (1)"
    assert len(out.read_text().splitlines()) == 3  # the run asked for this input; it is complete


def test_json_mode_is_a_cli_flag_and_the_hint_names_it(tmp_path, url, capsys):
    src = captions(tmp_path, 1)
    assert generate(src, tmp_path / "a.csv", url, "gen", "--validator-model", "val-yes") == 0
    assert stats(url)["json_mode_calls"] == 1  # the generator's request asks for a JSON object
    assert generate(src, tmp_path / "b.csv", url, "gen", "--validator-model", "val-yes",
                    "--no-json-mode") == 0
    assert stats(url)["json_mode_calls"] == 1
    with pytest.raises(CaptionBackendError, match="or --no-json-mode"):
        make_backend("llm", base_url=url, generator_model="gen-prose", max_tries=1).generate("a dog")
    with pytest.raises(CaptionBackendError, match="or --json-mode"):
        make_backend("llm", base_url=url, generator_model="gen-prose", max_tries=1,
                     json_mode=False).generate("a dog")
    assert main(["generate", "--in", str(src), "--out", str(tmp_path / "c.csv"), "--no-json-mode"]) == 2
    assert "--json-mode/--no-json-mode only apply to --backend llm" in capsys.readouterr().err


def test_a_hung_request_costs_two_timeouts_by_default(url):
    b = make_backend("llm", base_url=url, generator_model="slow-1-gen", timeout_s=0.2, backoff_s=0.01)
    with pytest.raises(CaptionBackendError, match=r"did not answer within 0\.2 s \(2 tries\)"):
        b.generate("a dog")
    assert stats(url)["by_model"] == {"slow-1-gen": 2}
    assert make_backend("llm").config.timeout_s == 30
