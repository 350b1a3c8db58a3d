"""The paper's recipes as presets (issue 15 item 4), checked offline by ``semclip train
--dry-run`` on fixtures in the authors' formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli.commands import main
from engine.train.presets import preset

DATA = Path(__file__).parent / "data"
AUTHORS = DATA / "semclip_authors"
SMALL = ["--set", "batch_size=1", "--set", "accum_steps=1"]  # the fixtures hold 4 rows


def test_paper_ccneg_is_the_authors_recipe():
    (cfg,) = preset("paper-ccneg")
    assert cfg.model == "ViT-B-32:laion2b_s34b_b79k" and cfg.lock_image
    assert cfg.lr == 5e-5 and cfg.batch_size == 256
    assert (cfg.alpha, cfg.beta, cfg.gamma) == (1.0, 1.0, 1.0)
    assert cfg.n_projections == 2 and not cfg.learnable_projections
    assert (cfg.split, cfg.split_seed, cfg.retrieval_k) == ("0.8,0.1,0.1", 42, [1, 3, 5])


@pytest.mark.parametrize("name", ["paper-ccneg", "paper-sugarcrepe", "paper-ccneg-ablations"])
def test_a_paper_preset_without_its_data_stops_before_any_work(name, capsys):
    assert main(["train", "--preset", name, "--dry-run"]) == 1
    assert "dataset is not set" in capsys.readouterr().err
    assert main(["train", "--preset", name]) == 2  # a real run stops at the same check
    err = capsys.readouterr().err
    assert "dataset is not set" in err and "--set dataset=PATH" in err


def test_dry_run_of_paper_ccneg_on_the_authors_csv_layout(capsys):
    args = ["train", "--preset", "paper-ccneg", "--dry-run", *SMALL,
            "--set", f"dataset={AUTHORS / 'ccneg_paraphrased.csv'}",
            "--set", f"data_root={AUTHORS / 'images'}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ccneg_paraphrased.csv: 4 rows; 4 of 4 sampled images found" in out
    assert "split 0.8,0.1,0.1 (seed 42): 4 train, 0 val, 0 test rows" in out
    assert "warning: the split's val part is empty" in out
    assert "needs open_clip's pretrained weights laion2b_s34b_b79k" in out
    assert "local cache" in out and "retrieval top-1/3/5" in out
    assert "nothing was trained" in out


def test_dry_run_of_paper_sugarcrepe_and_its_ablations(capsys):
    data = ["--set", f"dataset={AUTHORS / 'sugarcrepe_pp_paraphrased.csv'}",
            "--set", f"data_root={AUTHORS / 'images'}"]
    assert main(["train", "--preset", "paper-sugarcrepe", "--dry-run", *SMALL, *data]) == 0
    assert "sugarcrepe_pp_paraphrased.csv: 4 rows" in capsys.readouterr().out
    assert main(["train", "--preset", "paper-sugarcrepe-ablations", "--dry-run", *SMALL,
                 *data]) == 0
    assert "dry run: 7 config(s) would start" in capsys.readouterr().out


def test_the_ablations_are_table_1():
    runs = preset("paper-ccneg-ablations")
    got = {(c.name, c.beta, c.gamma, c.n_projections) for c in runs}
    assert got == {("clip-ccneg", 0.0, 0.0, 2),
                   ("paraphrase-ccneg-n1", 1.0, 0.0, 1), ("negation-ccneg-n1", 0.0, 1.0, 1),
                   ("semclip-ccneg-n1", 1.0, 1.0, 1),
                   ("paraphrase-ccneg-n2", 1.0, 0.0, 2), ("negation-ccneg-n2", 0.0, 1.0, 2),
                   ("semclip-ccneg-n2", 1.0, 1.0, 2)}
    assert len({c.out_dir for c in runs}) == len(runs)  # each run its own folder
    # only the loss differs from the paper's recipe
    (base,) = preset("paper-ccneg")
    keep = lambda c: {k: v for k, v in c.to_dict().items()
                      if k not in ("beta", "gamma", "n_projections", "name", "out_dir")}
    assert all(keep(c) == keep(base) for c in runs)


def test_dry_run_names_the_file_and_line_of_a_problem(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,caption,paraphrased,negation\n000000460347.jpg,c,p,n\n"
                   "000000322864.jpg,c,,n\n")
    common = ["train", "--preset", "paper-sugarcrepe", "--dry-run", *SMALL,
              "--set", f"data_root={AUTHORS / 'images'}"]
    assert main([*common, "--set", f"dataset={bad}"]) == 1
    assert f"{bad}:3: empty paraphrase" in capsys.readouterr().err
    # images under another folder than data_root: said before a model loads
    assert main([*common, "--set", f"dataset={AUTHORS / 'sugarcrepe_pp_paraphrased.csv'}",
                 "--set", f"data_root={tmp_path}"]) == 1
    assert "none of 4 sampled images exist" in capsys.readouterr().err
    # the preset's batch of 256 does not fit 4 rows
    assert main(["train", "--preset", "paper-sugarcrepe", "--dry-run",
                 "--set", f"data_root={AUTHORS / 'images'}",
                 "--set", f"dataset={AUTHORS / 'sugarcrepe_pp_paraphrased.csv'}"]) == 1
    assert "fewer than one batch of 512" in capsys.readouterr().err


def test_dry_run_with_a_column_mapping_and_an_unknown_tag(tmp_path, capsys):
    data = tmp_path / "t.tsv"
    data.write_text("img\ttext\tpara\tneg\n"
                    + "".join(f"img{i}.png\tc{i}\tp{i}\tn{i}\n" for i in range(3)))
    for i in range(3):
        (tmp_path / f"img{i}.png").write_bytes((DATA / "triples" / f"img{i}.png").read_bytes())
    args = ["train", "--preset", "paper-ccneg", "--dry-run", *SMALL, "--set", f"dataset={data}",
            "--columns", "image=img,caption=text,paraphrase=para,negation=neg"]
    assert main(args) == 0
    assert "3 rows; 3 of 3 sampled images found" in capsys.readouterr().out
    assert main([*args, "--set", "model=ViT-B-32:no_such_tag"]) == 1
    assert "'no_such_tag' is not a pretrained tag of ViT-B-32" in capsys.readouterr().err
