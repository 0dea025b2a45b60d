"""`wfpcap history`: one configuration over time, step changes found the asv way."""
import numpy as np
import pytest

from cli_runs import wfpcap
from harness.judge import history
from harness.report import history_page
from harness.judge.changepoint import detect_steps
from stored_runs import graft_ndr, noisy_copy, real_run, set_status


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Real model runs with the buffer at 16,500 and at 12,000. The NDR rows (and their trials)
    come from a real run with a small buffer: the NDR does not depend on it, and its trials,
    sized from the capacity, are eight times shorter."""
    root = tmp_path_factory.mktemp("sources")
    runs = {b: real_run(root / str(b), system_buffer=b) for b in (16500, 12000)}
    graft_ndr(real_run(root / "ndr", ndr_costs=(20.0,), system_buffer=2000), runs[16500])
    return runs


def ten_runs(config, sources, rng, step_at=None):
    """Ten runs of one configuration; from run `step_at` (1-based) on, the buffer is 12,000."""
    names = []
    for k in range(10):
        source = sources[12000] if step_at and k + 1 >= step_at else sources[16500]
        name = f"202611{k + 1:02d}T030000Z"
        noisy_copy(source, config, name, rng, f"2026-11-{k + 1:02d}T03:00:00Z")
        names.append(name)
    return names


def test_history_names_the_seventh_run_as_the_buffer_step(sources, tmp_path):
    config = tmp_path / "reports" / "box-model-0123456789"
    names = ten_runs(config, sources, np.random.default_rng(7), step_at=7)
    p = wfpcap("history", config)
    assert p.returncode == 0, p.stderr
    steps = [line for line in p.stdout.splitlines() if line.startswith("step in")]
    assert any("System buffer" in s and f"at run 7 of 10, {names[6]}" in s for s in steps), p.stdout
    # the capacity holds the buffer, so it steps at the same run; nothing else steps
    assert len(steps) == 2 and all("at run 7 of 10" in s for s in steps), p.stdout
    for name in ("history.html", "history.md", "history-buffer_depth.png", "history-burst_capacity.png",
                 "history-queue_limit.png"):
        assert (config / name).stat().st_size > 1000, name
    assert names[6] in (config / "history.md").read_text()


@pytest.mark.parametrize("seed", range(25))
def test_history_finds_exactly_that_step_under_every_noise_draw(sources, tmp_path, seed):
    config = tmp_path / "c"
    ten_runs(config, sources, np.random.default_rng(seed), step_at=7)
    found = history.build(config)
    buffer = [s for s in found.series if s.key == "buffer_depth"][0]
    assert [step.index for step in buffer.steps] == [6]
    assert buffer.steps[0].before == pytest.approx(16500, rel=0.05)
    assert buffer.steps[0].after == pytest.approx(12000, rel=0.05)


@pytest.mark.parametrize("seed", range(25))
def test_noise_alone_gives_no_step(sources, tmp_path, seed):
    config = tmp_path / "c"
    ten_runs(config, {12000: sources[16500], 16500: sources[16500]}, np.random.default_rng(100 + seed), step_at=7)
    found = history.build(config)
    assert [s.key for s in found.series] == ["burst_capacity", "queue_limit", "buffer_depth", "ndr@20us"]
    assert found.steps == [], [(s.key, st) for s, st in found.steps]


def test_incomplete_runs_are_listed_and_left_out(sources, tmp_path):
    config = tmp_path / "c"
    names = ten_runs(config, sources, np.random.default_rng(3))
    set_status(config / names[4], "interrupted", detail="SIGINT during test_sustained_rate.py::test_ndr")
    summary = set_status(config / names[5], "complete")
    del summary["run"]
    (config / names[5] / "summary.json").write_text(__import__("json").dumps(summary))
    found = history.build(config)
    assert len(found.runs) == 10 and len(found.complete) == 8
    assert all(len(s.runs) == 8 for s in found.series)
    text = history_page.markdown(found, {})
    assert "interrupted: SIGINT during test_sustained_rate.py::test_ndr" in text
    assert "unknown: written before runs recorded their status" in text
    assert "2 flagged and left out" in text


def test_step_detection_on_plain_series():
    rng = np.random.default_rng(0)
    flat = 100 + rng.normal(0, 1, 40)
    assert detect_steps(flat) == []
    stepped = np.concatenate([flat[:25], flat[25:] + 8])
    assert [s.index for s in detect_steps(stepped)] == [25]
    two = np.concatenate([flat[:15], flat[15:30] - 10, flat[30:] + 10])
    assert [s.index for s in detect_steps(two)] == [15, 30]
    # a single odd run is an outlier, not a step; identical values (the model) never step
    spike = flat.copy()
    spike[20] += 30
    assert detect_steps(spike) == []
    assert detect_steps([256.0] * 10) == []
    assert [s.index for s in detect_steps([256.0] * 5 + [128.0] * 5)] == [5]


def test_a_step_inside_the_measured_spread_is_not_a_step():
    values = [1000, 1002, 998, 1001, 999, 1030, 1028, 1031, 1029, 1030]
    assert [s.index for s in detect_steps(values)] == [5]
    assert detect_steps(values, [40.0] * 10) == []  # each run could not tell 1000 from 1030


def test_history_of_a_missing_folder_is_one_line(tmp_path):
    p = wfpcap("history", tmp_path / "nope")
    assert p.returncode == 2 and p.stderr.startswith("wfpcap: ") and p.stderr.count("\n") == 1
