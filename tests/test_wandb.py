"""wandb logging, for real, in offline mode: what a run sends is read back from wandb's own run file."""
import glob
import json
import os
import struct

import pytest

from tests.test_main_e2e import paper_flags

AIOLI = ["--aioli", "--update_steps", "4", "--lp_rounds", "1", "--lp_steps", "1", "--one_hot_factor", "0.75",
         "--eta", "1", "--aioli_normalize_A", "--lp_eval_samples", "4", "--warmup_steps", "1"]


def read_wandb_records(path):
    """The protobuf records of a .wandb file: a 7-byte header, then LevelDB-style log records (7-byte
    header: crc32, little-endian length, kind 1 full / 2 first / 3 middle / 4 last) in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, pending, records = open(path, "rb").read(), 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def test_an_offline_run_logs_config_losses_mixture_and_aiolis_A(tiny_shards, tmp_path, monkeypatch):
    import main

    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = str(tmp_path / "out")
    main.main(paper_flags(tiny_shards, out, "--max_steps", "10", "--num_ckpts", "2", "--log_every", "1",
                          "--max_test_samples", "8", "--run_name", "r", *AIOLI,
                          "--wandb_project", "mixing-tests", "--wandb_entity", "some-team", "--wandb_mode", "offline"))
    (run_file,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    records = read_wandb_records(run_file)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.project, run.entity, run.display_name) == ("mixing-tests", "some-team", "r")
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    local = json.load(open(os.path.join(out, "r", "config.json")))
    assert config["method"] == "aioli" and config["groups"] == local["groups"] == ["arxiv", "stackexchange"]
    assert config["lr"] == local["lr"]
    history = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            history[row["_step"]] = row
    metrics = [json.loads(line) for line in open(os.path.join(out, "r", "metrics.jsonl"))]
    for line in (m for m in metrics if "train_loss" in m):  # every logged step, with its mixture
        row = history[line["step"]]
        assert row["train_loss"] == pytest.approx(line["train_loss"])
        assert {g: row[f"{g}/weights"] for g in line["weights"]} == pytest.approx(line["weights"])
    evaluated = [m for m in metrics if "val_loss" in m and "train_loss" in m]
    assert evaluated and all(history[m["step"]]["arxiv/val_loss"] == pytest.approx(m["val_loss"]["arxiv"])
                             for m in evaluated)
    # Aioli's A per round, as a table of (round, step, evaluated group, trained group, A)
    table_entry = [row for row in history.values() if "aioli_A/path" in row]
    assert len(table_entry) == 1
    table = json.load(open(os.path.join(os.path.dirname(run_file), "files", table_entry[0]["aioli_A/path"])))
    assert table["columns"] == ["round", "step", "evaluated", "trained", "A"]
    rounds = json.load(open(os.path.join(out, "r", "aioli.json")))["rounds"]
    assert len(table["data"]) == 4 * len(rounds) > 0
    first = rounds[0]
    assert [row[4] for row in table["data"][:4]] == pytest.approx([a for row in first["A"] for a in row])


def test_wandb_stays_off_unless_asked(tiny_shards, tmp_path, monkeypatch):
    import main

    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    main.main(paper_flags(tiny_shards, str(tmp_path / "out"), "--max_steps", "2", "--max_test_samples", "4",
                          "--max_eval_samples", "4"))
    assert not os.path.exists(tmp_path / "wandb")
