"""`gdt train` on real webdataset shards and `gdt sample` from its checkpoint, through the parser."""

import argparse

import pytest
from PIL import Image

from tests.training.data_fixtures import png, write_shard
from training.command import register


def gdt(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gdt")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def shards(tmp_path):
    folder = tmp_path / "shard"
    folder.mkdir()
    write_shard(folder / "train-000000.tar", [2, 3, 2, 3, 2, 3, 2, 3])
    return folder


def test_train_then_sample_with_a_reference(tmp_path, shards, capsys):
    out = tmp_path / "run"
    code = gdt(
        "train",
        "--config",
        "training/configs/tiny.yaml",
        "--shards",
        str(shards),
        "--set",
        f"out_dir={out}",
        "--set",
        "max_steps=2",
        "--set",
        "checkpoint_every=2",
        "--set",
        "sample.every=0",
        "--set",
        "data.resolution=16",
    )
    assert code == 0
    assert "trained to step 2" in capsys.readouterr().out
    checkpoint = out / "checkpoints" / "step-00000002"
    captions = tmp_path / "captions.txt"
    captions.write_text("a red square\na red circle\n\na red star\n")
    reference = tmp_path / "ref.png"
    reference.write_bytes(png(99))
    code = gdt(
        "sample",
        "--checkpoint",
        str(checkpoint),
        "--captions",
        str(captions),
        "--reference",
        str(reference),
        "--out",
        str(tmp_path / "samples"),
        "--steps",
        "2",
    )
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert written == ["0.png", "1.png", "2.png", "grid.png"]
    with Image.open(tmp_path / "samples" / "grid.png") as grid:
        assert grid.size == (2 + 3 * (16 + 2), 16 + 4)


def test_bad_inputs_are_clear_errors(tmp_path, shards, capsys):
    assert gdt("train", "--config", "training/configs/tiny.yaml", "--shards", str(tmp_path / "none")) == 2
    assert "no shards" in capsys.readouterr().err
    captions = tmp_path / "c.txt"
    captions.write_text("one\n")
    assert gdt("sample", "--checkpoint", str(tmp_path), "--captions", str(captions)) == 2
    assert "not a checkpoint" in capsys.readouterr().err
    assert gdt("sample", "--checkpoint", str(tmp_path), "--captions", str(tmp_path / "missing.txt")) == 2
    assert "no such file" in capsys.readouterr().err
