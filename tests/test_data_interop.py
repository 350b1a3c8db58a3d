"""Data interop (issue 15 item 5): column mappings, TSV, the SemCLIP authors' CSVs, webdataset
shards, the authors' 80/10/10 split, and malformed copies of each."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine.cli.commands import main
from engine.data.shards import read_shards, shard_pattern, write_shards
from engine.data.triples import TriplesFormatError, read_triples
from engine.data.triples_io import parse_columns, split_indices
from engine.train.config import ConfigError, TrainConfig

DATA = Path(__file__).parent / "data"
TRIPLES = DATA / "triples" / "triples.csv"
AUTHORS = DATA / "semclip_authors"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_authors_sugarcrepe_csv_is_read_by_its_own_header():
    triples = read_triples(AUTHORS / "sugarcrepe_pp_paraphrased.csv", root=AUTHORS / "images")
    assert len(triples) == 4
    assert triples[0].image == AUTHORS / "images" / "000000460347.jpg" and triples[0].image.is_file()
    assert triples[0].paraphrase == "a white ground with a red disk on it"
    assert triples[3].caption == "a yellow circle, drawn large"


def test_the_authors_ccneg_csv_names_images_by_a_zero_padded_number():
    triples = read_triples(AUTHORS / "ccneg_paraphrased.csv", root=AUTHORS / "images")
    assert [t.image.name for t in triples] == ["000000002.jpg", "000000017.jpg",
                                               "000000023.jpg", "000000041.jpg"]
    assert all(t.image.is_file() for t in triples)


def test_an_image_number_that_is_not_a_number_names_the_line(tmp_path):
    bad = write(tmp_path / "c.csv", "image_number,caption,paraphrased,negation\n"
                                    "2,c,p,n\nx7,c,p,n\n")
    with pytest.raises(TriplesFormatError, match=r"c\.csv:3: image_number must be a whole number"):
        read_triples(bad)


def test_a_column_mapping_reads_other_names_in_csv_tsv_and_jsonl(tmp_path):
    columns = parse_columns("image=path, caption=text,paraphrase=para,negation=neg")
    (tmp_path / "a.png").write_bytes(b"")
    write(tmp_path / "t.csv", "path,text,para,neg,extra\na.png,c,p,n,x\n")
    write(tmp_path / "t.tsv", "path\ttext\tpara\tneg\na.png\tc, with a comma\tp\tn\n")
    write(tmp_path / "t.jsonl", json.dumps({"path": "a.png", "text": "c", "para": "p",
                                            "neg": "n"}) + "\n")
    for name in ("t.csv", "t.tsv", "t.jsonl"):
        (t,) = read_triples(tmp_path / name, columns=columns)
        assert (t.image, t.paraphrase, t.negation) == (tmp_path / "a.png", "p", "n")
    assert read_triples(tmp_path / "t.tsv", columns=columns)[0].caption == "c, with a comma"


def test_malformed_mapped_and_tsv_files_name_file_and_line(tmp_path):
    # a missing column: the message says which field and under which name it was looked for
    no_col = write(tmp_path / "a.csv", "image,txt,paraphrase\nx.png,c,p\n")
    with pytest.raises(TriplesFormatError,
                       match=r"a\.csv:1: header lacks column\(s\) caption \(as column 'text'\), "
                             r"negation"):
        read_triples(no_col, columns={"caption": "text"})
    # a bad row
    ragged = write(tmp_path / "b.tsv", "image\tcaption\tparaphrase\tnegation\n"
                                       "x.png\tc\tp\tn\ny.png\tc\tp\n")
    with pytest.raises(TriplesFormatError, match=r"b\.tsv:3: 3 fields, header has 4"):
        read_triples(ragged)
    # an empty file
    with pytest.raises(TriplesFormatError, match=r"c\.tsv: empty file"):
        read_triples(write(tmp_path / "c.tsv", ""))
    # a tab-separated file named .csv: the sniffed delimiter is named, with the fix
    tabs = write(tmp_path / "d.csv", "image\tcaption\tparaphrase\tnegation\nx.png\tc\tp\tn\n")
    with pytest.raises(TriplesFormatError, match=r"d\.csv:1: .* looks tab-separated, not "
                                                 r"comma-separated: name it \.tsv"):
        read_triples(tabs)
    semis = write(tmp_path / "e.tsv", "image;caption;paraphrase;negation\nx.png;c;p;n\n")
    with pytest.raises(TriplesFormatError, match=r"e\.tsv:1: .* looks semicolon-separated"):
        read_triples(semis)
    # a mapping to a field that does not exist
    with pytest.raises(ValueError, match="unknown field"):
        parse_columns("captoin=text")
    with pytest.raises(ValueError, match="FIELD=COLUMN"):
        parse_columns("caption")


def test_columns_are_a_config_field_set_from_the_command_line_and_checked(tmp_path):
    cfg = TrainConfig().with_overrides(["columns=caption=text,negation=neg", "retrieval_k=1,3,5"])
    assert cfg.columns == {"caption": "text", "negation": "neg"} and cfg.retrieval_k == [1, 3, 5]
    assert TrainConfig.from_json(write(tmp_path / "c.json", cfg.to_json())) == cfg
    with pytest.raises(ConfigError, match="columns: unknown field"):
        TrainConfig(columns={"text": "caption"}).validate(check_model=False)
    with pytest.raises(ConfigError, match="retrieval_k"):
        TrainConfig(retrieval_k=[0]).validate(check_model=False)
    with pytest.raises(ConfigError, match="split must be three fractions"):
        TrainConfig(split="0.8,0.3,0.1").validate(check_model=False)
    # best_metric may name a depth of retrieval_k, evaluated on the split's val part
    TrainConfig(dataset="t.csv", split="0.8,0.1,0.1", retrieval_k=[1, 3],
                best_metric="val/caption_top3").validate(check_model=False)
    with pytest.raises(ConfigError, match="'val/caption_top3' is not one of"):
        TrainConfig(dataset="t.csv", split="0.8,0.1,0.1",
                    best_metric="val/caption_top3").validate(check_model=False)
    with pytest.raises(ConfigError, match="split and val_dataset are both set"):
        TrainConfig(dataset="t.csv", split="0.8,0.1,0.1",
                    val_dataset="v.csv").validate(check_model=False)


def test_the_split_is_the_authors_pandas_shuffle():
    # pandas' df.sample(frac=1, random_state=42) draws RandomState(42).choice(n, n, replace=False)
    n = 103
    train, val, test = split_indices(n, (0.8, 0.1, 0.1), 42)
    assert (len(train), len(val), len(test)) == (83, 10, 10)
    assert train + val + test == np.random.RandomState(42).choice(n, n, replace=False).tolist()


def test_shards_round_trip_and_train_for_two_steps(tmp_path, capsys):
    paths = write_shards(TRIPLES, tmp_path / "shards", shard_size=2)
    assert [p.name for p in paths] == ["train-000000.tar", "train-000001.tar"]
    pattern = shard_pattern(paths)
    assert pattern.endswith("train-{000000..000001}.tar")
    triples, images = read_shards(pattern)
    originals = read_triples(TRIPLES)
    assert [t.caption for t in triples] == [t.caption for t in originals]
    assert [t.negation for t in triples] == [t.negation for t in originals]
    assert images.read(triples[2].image).size == (32, 32)

    assert main(["shards", "--in", str(TRIPLES), "--out", str(tmp_path / "cli"),
                 "--shard-size", "3"]) == 0
    assert "wrote 3 samples in 1 shard" in capsys.readouterr().out
    cfg = TrainConfig(model="semclip-tiny", dataset=pattern, val_dataset=pattern, batch_size=1,
                      max_steps=2, warmup_steps=1, out_dir=str(tmp_path / "run"))
    cfg.to_json(tmp_path / "cfg.json")
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--quiet"]) == 0
    sidecar = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert sidecar["step"] == 2


def test_a_malformed_shard_names_the_shard_and_sample(tmp_path):
    shard = tmp_path / "bad.tar"
    with tarfile.open(shard, "w") as tar:
        for name in ("0001.png", "0002.png"):
            tar.add(DATA / "triples" / "img0.png", arcname=name)
        info_path = tmp_path / "0001.json"
        info_path.write_text(json.dumps({"caption": "c", "paraphrase": "p", "negation": "n"}))
        tar.add(info_path, arcname="0001.json")
    with pytest.raises(TriplesFormatError, match=r"bad\.tar:2 \(sample 0002\): missing field"):
        read_shards(str(shard))
    with pytest.raises(FileNotFoundError, match="shard file"):
        read_shards(str(tmp_path / "none-{0..1}.tar"))


def test_train_on_a_split_reports_the_chosen_retrieval_depths(tmp_path, capsys):
    rows = "".join(f"img{i % 3}.png,caption {i},paraphrase {i},negation {i}\n" for i in range(10))
    data = write(tmp_path / "t.csv", "image,caption,paraphrase,negation\n" + rows)
    for i in range(3):
        (tmp_path / f"img{i}.png").write_bytes((DATA / "triples" / f"img{i}.png").read_bytes())
    cfg = TrainConfig(model="semclip-tiny", dataset=str(data), split="0.6,0.2,0.2",
                      retrieval_k=[1, 3], batch_size=2, max_steps=2, warmup_steps=1,
                      out_dir=str(tmp_path / "run"))
    cfg.to_json(tmp_path / "cfg.json")
    assert main(["train", "--config", str(tmp_path / "cfg.json")]) == 0
    out = capsys.readouterr()
    assert "6 train, 2 val, 2 test rows" in out.err + out.out
    assert "caption_top3=" in out.out and "caption_top5" not in out.out
    # a split too small for a val part trains without evaluating, and says so
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--overwrite",
                 "--set", "split=0.95,0.05,0.0"]) == 0
    out = capsys.readouterr()
    assert "the split's val part is empty: no evaluation" in out.err + out.out
    assert "caption_top3=" not in out.out


def test_generate_keeps_existing_paraphrases_and_negations_unless_told(tmp_path, capsys):
    src = write(tmp_path / "c.csv", "image,caption,paraphrase,negation\n"
                                    "a.png,a dog on a bench,MY PARAPHRASE,MY NEGATION\n"
                                    "b.png,a red circle,,MY OTHER NEGATION\n"
                                    "c.png,a dog on a bench,,\n")
    out = tmp_path / "t.csv"
    args = ["generate", "--in", str(src), "--out", str(out), "--quiet", "--no-cache"]
    assert main(args) == 0
    rows = read_triples(out)
    assert (rows[0].paraphrase, rows[0].negation) == ("MY PARAPHRASE", "MY NEGATION")
    assert rows[1].negation == "MY OTHER NEGATION" and rows[1].paraphrase not in ("", "MY")
    assert rows[2].paraphrase != "MY PARAPHRASE" and rows[2].negation != "MY NEGATION"
    err = capsys.readouterr().err
    assert "holds 1 paraphrase and 2 negation cells: kept" in err and "--replace-existing" in err
    assert main([*args, "--replace-existing"]) == 0
    rows = read_triples(out)
    assert rows[0].paraphrase != "MY PARAPHRASE" and rows[1].negation != "MY OTHER NEGATION"
    assert "replacing them" in capsys.readouterr().err


def test_generate_reads_mapped_columns_tsv_and_the_authors_paraphrased(tmp_path, capsys):
    src = write(tmp_path / "c.tsv", "path\ttext\tsource\na.png\ta dog on a bench\tweb\n")
    out = tmp_path / "t.csv"
    assert main(["generate", "--in", str(src), "--out", str(out), "--quiet", "--no-cache",
                 "--columns", "caption=text,image=path"]) == 0
    (row,) = read_triples(out)
    assert row.caption == "a dog on a bench" and row.image == tmp_path / "a.png"
    assert out.read_text().splitlines()[0] == "image,caption,paraphrase,negation,source"
    authors = write(tmp_path / "s.csv", "filename,caption,paraphrased,negation\n"
                                        "a.png,a dog on a bench,THEIRS,\n")
    assert main(["generate", "--in", str(authors), "--out", str(out), "--quiet",
                 "--no-cache"]) == 0
    (row,) = read_triples(out)
    assert row.paraphrase == "THEIRS" and row.negation and row.image == tmp_path / "a.png"
    assert main(["generate", "--in", str(src), "--out", str(out), "--quiet", "--no-cache",
                 "--columns", "caption=nope"]) == 1
    assert "no caption (as column 'nope') column" in capsys.readouterr().err


def test_eval_reads_a_mapped_tsv_and_reports_the_asked_retrieval_depths(tmp_path, capsys):
    data = write(tmp_path / "t.tsv", "img\ttext\tparaphrase\tneg\n" + "".join(
        f"img{i}.png\tcaption {i}\tparaphrase {i}\tnegation {i}\n" for i in range(3)))
    for i in range(3):
        (tmp_path / f"img{i}.png").write_bytes((DATA / "triples" / f"img{i}.png").read_bytes())
    args = ["eval", "--benchmark", "triples", "--data", str(data), "--model", "semclip-tiny",
            "--quiet", "--no-cache", "--workers", "1"]
    assert main([*args, "--columns", "image=img,caption=text,negation=neg",
                 "--retrieval-k", "1,3"]) == 0
    out = capsys.readouterr().out
    assert "caption_top3" in out and "paraphrase_top3" in out and "caption_top5" not in out
    assert main([*args]) == 1  # without the mapping: the header is named with its line
    assert f"{data}:1: header lacks column(s) image, caption, negation" in capsys.readouterr().err
    assert main([*args, "--retrieval-k", "0"]) == 2


def test_eval_scores_the_rows_a_split_held_out(tmp_path, capsys):
    from engine.data.triples_io import SplitPart

    rows = "".join(f"img{i % 3}.png,caption {i},paraphrase {i},negation {i}\n" for i in range(10))
    data = write(tmp_path / "t.csv", "image,caption,paraphrase,negation\n" + rows)
    for i in range(3):
        (tmp_path / f"img{i}.png").write_bytes((DATA / "triples" / f"img{i}.png").read_bytes())
    held_out = SplitPart("0.6,0.2,0.2", 42, "test").select(read_triples(data))
    assert len(held_out) == 2
    args = ["eval", "--benchmark", "triples", "--data", str(data), "--model", "semclip-tiny",
            "--quiet", "--no-cache", "--workers", "1", "--json", str(tmp_path / "r.json")]
    assert main([*args, "--split", "0.6,0.2,0.2"]) == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["models"][0]["counts"]["rows"] == 2
    assert main([*args, "--split", "0.6,0.2,0.2", "--part", "train"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["models"][0]["counts"]["rows"] == 6
    capsys.readouterr()
    assert main([*args, "--split", "0.6,0.6"]) == 2
    assert "split must be three" in capsys.readouterr().err
