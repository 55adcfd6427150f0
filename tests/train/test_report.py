"""What a run leaves for people: the metrics log across resumes, throughput, report.md."""

import json

import pytest

from gptkit.config import RunConfig, load_config
from gptkit.train.report import MetricsLog, Progress, Throughput, read_metrics, write_report


def test_metrics_log_drops_lines_past_the_resumed_step(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(1, 7):
        log.write({"step": step, "loss": 10.0 - step})
    resumed = MetricsLog(tmp_path / "metrics.jsonl", truncate_after=4)  # the checkpoint was at step 4
    resumed.write({"step": 5, "loss": 0.5})
    assert [(r["step"], r["loss"]) for r in read_metrics(tmp_path / "metrics.jsonl")] == [
        (1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0), (5, 0.5)]


def test_only_the_main_process_writes_metrics(tmp_path):
    MetricsLog(tmp_path / "metrics.jsonl", enabled=False).write({"step": 1, "loss": 1.0})
    assert not (tmp_path / "metrics.jsonl").exists()


def test_throughput_counts_the_steps_since_the_last_reading():
    meter = Throughput(flops_per_token=1e6, peak_flops=1e12)
    meter.add(5000, 0.5)
    meter.flops_per_token = 4e6  # the model grew
    meter.add(5000, 1.5)
    first = meter.read()
    assert first["tokens_per_s"] == 10000 / 2.0  # step time only, whatever happened between steps
    assert first["mfu"] == pytest.approx((5000 * 1e6 + 5000 * 4e6) / 2.0 / 1e12)
    assert meter.read()["tokens_per_s"] == 0  # the reading starts a new interval


def test_report_states_steps_losses_throughput_and_config(tmp_path):
    run = load_config(RunConfig, "tiny", ["max_steps=40"])
    with open(tmp_path / "metrics.jsonl", "w") as fh:
        for record in ({"step": 10, "loss": 3.5, "lr": 1e-3, "tokens_per_s": 1200.0, "mfu": 0.02},
                       {"step": 20, "loss": 3.0, "lr": 1e-3, "tokens_per_s": 1000.0, "mfu": 0.04},
                       {"step": 20, "val_loss": 3.25, "sample": "def f(): pass"}):
            fh.write(json.dumps(record) + "\n")
    write_report(tmp_path, run, 12_345, Progress(step=20, tokens_seen=5120, elapsed=90.0), "SIGINT", "float32")
    report = (tmp_path / "report.md").read_text()
    for line in ("- parameters: 12,345", "- steps: 20 of 40 (stopped by SIGINT)", "- tokens seen: 5,120",
                 "- training time: 1.5 min, float32", "- throughput: 1,100 tokens/s, MFU 3.0%",
                 "- final train loss: 3.0000", "- final val loss: 3.2500, best: 3.2500", "def f(): pass"):
        assert line in report
    assert '"max_steps": 40' in report
