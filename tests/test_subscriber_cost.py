"""The --subscriber-cost file: read as samples or a histogram, drawn by inverse CDF with its own
seed (the same per-event sequence on every platform), and refused in one line when bad."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import stats

from bad_input import refused
from harness.inputs import BadInput
from harness.spec import SubscriberSpec
from harness.subscriber import Callback, work_costs
from harness.subscriber_cost import MAX_FILE_BYTES, CostDistribution, read_cost_file


def write(tmp_path, text, name="cost.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_samples_are_drawn_with_their_own_frequencies(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.lognormal(np.log(40), 0.8, 20_000)  # a long tail, as callbacks have
    path = write(tmp_path, "cost_us\n# from the agent's ETW trace\n" + "\n".join(f"{v:.3f}" for v in truth))
    dist = read_cost_file(path, seed=5)
    draws = dist.draw(50_000) / 1000
    # the draws come from the samples' empirical distribution: a two-sample KS test cannot tell them apart
    assert stats.ks_2samp(draws, truth).pvalue > 0.01
    assert np.median(draws) == pytest.approx(40, rel=0.05)
    assert dist.describe()["samples"] == 20_000 and dist.kind == "samples"
    assert dist.quantile_us(0.99) == pytest.approx(np.quantile(truth, 0.99), rel=0.01)


def test_a_histogram_gives_each_bin_its_share(tmp_path):
    path = write(tmp_path, "bin,count\n10,700\n100,200\n1000,100\n5000,0\n", "cost.csv")
    dist = read_cost_file(path)
    draws = dist.draw(100_000)
    shares = [np.mean(draws == v) for v in (10_000, 100_000, 1_000_000)]
    assert shares == pytest.approx([0.7, 0.2, 0.1], abs=0.005)
    assert dist.mean_us == pytest.approx(0.7 * 10 + 0.2 * 100 + 0.1 * 1000)
    assert dist.kind == "histogram" and 5_000_000 not in draws


def test_the_same_seed_draws_the_same_sequence_everywhere(tmp_path):
    """Event k costs the same on the model (n draws) and on a real platform (a callback sized
    count + 64): a longer draw extends a shorter one, and no platform's generator is used."""
    dist = read_cost_file(write(tmp_path, "5\n50\n500\n"), seed=11)
    sub = SubscriberSpec(cost_distribution=dist)
    model = work_costs(np.random.default_rng(1), sub, 1000)
    callback = Callback(sub, 1064, release=None, seed=999)
    try:
        assert callback.work[:1000].tolist() == model.tolist()
    finally:
        callback.close()
    assert work_costs(np.random.default_rng(2), sub, 10).tolist() == model[:10].tolist()
    assert dist.with_seed(12).draw(1000).tolist() != model.tolist()


def test_a_cost_distribution_replaces_the_constant_cost():
    dist = CostDistribution(np.array([1.0, 2.0]), np.array([1, 1]))
    with pytest.raises(ValueError, match="replaces cost_us and cost_cv"):
        SubscriberSpec(cost_us=5, cost_distribution=dist)
    a = SubscriberSpec(cost_distribution=dist)
    assert a == pickle.loads(pickle.dumps(a)) and hash(a) == hash(SubscriberSpec(cost_distribution=dist))


@pytest.mark.parametrize("text,line", [
    (None, "cannot read cost file .*: No such file or directory"),
    ("", "holds no costs"),
    ("# nothing measured\n\n", "holds no costs"),
    ("cost_us\n", "holds no costs"),
    ("bin,count\n10,0\n", "holds no costs"),
    ("12\n-3\n", "line 2: cost -3 us is negative"),
    ("12\nnan\n", "line 2: cost 'nan' is not a finite number"),
    ("inf\n", "line 1: cost 'inf' is not a finite number"),
    ("12\nabc\n", "line 2: cost 'abc' is not a number"),
    ("2000000\n", "line 1: cost 2000000 us is over 1e\\+06 us"),
    ("bin,count\n10,5\n20\n", "line 3: 1 fields where the file has bin,count a line"),
    ("bin,count\n10,-5\n", "line 2: count -5 must be a whole number >= 0"),
    ("bin,count\n10,2.5\n", "line 2: count 2.5 must be a whole number >= 0"),
])
def test_bad_cost_files_are_refused_in_one_line(tmp_path, text, line):
    refused(read_cost_file, tmp_path / "cost.txt", text, line)


def test_a_cost_file_too_large_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written, and nothing must be read
    with pytest.raises(BadInput, match=f"is {MAX_FILE_BYTES + 1:,} bytes; at most {MAX_FILE_BYTES:,}"):
        read_cost_file(path)
