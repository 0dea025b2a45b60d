"""The NDR searches on the model: the backlog-trend search agrees with the loss-only search in a
fraction of its trial time, and no search rests on a trial whose generator missed its load."""
from dataclasses import replace

import numpy as np
import pytest

from harness.experiments.search import NdrConfig
from harness.experiments.ndr import search_ndr
from harness.experiments.ndr_loss import search_ndr_by_loss
from harness.platforms.base import Capabilities
from harness.platforms.model import ModelParams, ModelPlatform
from harness.results.fingerprint import fingerprint
from harness.results.store import ResultStore
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec

BASE = TrialSpec(TrafficSpec(count=1), SubscriberSpec(cost_us=5.0, cost_cv=0.2))
# the quick profile's virtual-time searches; the loss-only one at 2 % of its 2/cost ceiling resolves
# about as finely as the trend search at 4 % of NDR (both ~4 % of 1/cost)
TREND = NdrConfig(resolution=0.04, trial_s=0.02, max_trial_s=16.0, max_confirm_s=300.0)
LOSS = NdrConfig(resolution=0.02, max_iterations=12, max_duration_s=300.0)


def saturated_rate(p: ModelParams, cost_us: float) -> float:
    s = (cost_us + p.per_event_overhead_us) * 1e-6
    return p.queue_limit / (p.queue_limit * s + p.batch_turnaround_us * 1e-6)


def store_for(platform, tmp_path):
    return ResultStore(tmp_path, fingerprint(platform.describe()), platform.name)


@pytest.mark.parametrize("buffer", [1_000, 16_500, 40_000])
@pytest.mark.parametrize("cost_us", [20.0, 100.0, 500.0])
def test_trend_search_equals_loss_search_in_a_fifth_of_the_time(tmp_path, cost_us, buffer):
    p = ModelParams(system_buffer=buffer, seed=int(cost_us) + buffer)
    capacity = p.true_burst_capacity()
    trend = search_ndr(ModelPlatform(p), BASE, store_for(ModelPlatform(p), tmp_path / "t"), cost_us, capacity, 1e6, TREND)
    loss = search_ndr_by_loss(ModelPlatform(p), BASE, store_for(ModelPlatform(p), tmp_path / "l"), cost_us, capacity,
                              1e6, LOSS)
    resolution = max(trend.resolution_per_s, loss.resolution_per_s)
    assert abs(trend.rate_per_s - loss.rate_per_s) <= resolution, (trend.rate_per_s, loss.rate_per_s)
    assert trend.trial_time_s <= loss.trial_time_s / 5, (trend.trial_time_s, loss.trial_time_s)
    # and both sit at the model's service rate, which neither was told
    mu = saturated_rate(p, cost_us)
    assert abs(trend.rate_per_s - mu) <= trend.resolution_per_s
    assert trend.mu_per_s == pytest.approx(mu, rel=0.02)
    assert trend.status == "conclusive" and trend.confirmation.confirmed


class Generator:
    """The model behind a sender like a busy runner's: it cannot offer more than `limit` packets/s
    (a trial asked for more goes out at `limit`, and says so), and every `stumble`-th trial it falls
    far behind its schedule once (the trial is flagged untrusted)."""

    def __init__(self, params: ModelParams, limit: float, stumble: int | None = None) -> None:
        self.model = ModelPlatform(params)
        self.name, self.limit, self.stumble = "model", limit, stumble
        self.capabilities = self.model.capabilities
        self.trials = 0

    def describe(self):
        return self.model.describe()

    def run_trial(self, spec: TrialSpec):
        self.trials += 1
        asked = spec.traffic.rate_per_s
        actual = min(asked, self.limit)
        result = self.model.run_trial(replace(spec, traffic=replace(spec.traffic, rate_per_s=actual)))
        result.spec = spec
        reasons = []
        if actual < 0.95 * asked:
            reasons.append(f"achieved {actual:.0f}/s < target {asked:.0f}/s")
        lag = 0
        if self.stumble and self.trials % self.stumble == 0:
            lag = spec.traffic.count // 5
            reasons.append(f"fell {lag} packets behind schedule")
        result.generator = {"achieved_rate_per_s": actual, "target_rate_per_s": asked, "trusted": not reasons,
                            "reason": "; ".join(reasons), "lag_max_events": lag, "late_p99_us": 0.0}
        return result


def test_a_generator_that_cannot_reach_the_rate_limits_the_search(tmp_path):
    p = ModelParams(system_buffer=4000)
    platform = Generator(p, limit=30_000)   # the 20 us subscriber could take ~44,000/s
    store = store_for(platform, tmp_path)
    row = search_ndr(platform, BASE, store, 20.0, p.true_burst_capacity(), 1e6, TREND)
    assert row.rate_per_s <= 30_000  # never a rate the generator did not offer
    assert row.status == "generator-limited" and row.generator_limited
    trials = store.trials()
    untrusted = trials.loc[trials["trusted"] == False, "trial"].tolist()  # noqa: E712
    assert untrusted and set(untrusted) == set(row.untrusted_trials)
    assert not set(row.rests_on) & set(untrusted)


def test_the_loss_only_search_never_counts_a_missed_load_as_loss_free(tmp_path):
    p = ModelParams(system_buffer=4000)
    platform = Generator(p, limit=30_000)
    store = store_for(platform, tmp_path)
    row = search_ndr_by_loss(platform, BASE, store, 20.0, p.true_burst_capacity(), 1e6, LOSS)
    assert row.rate_per_s is None or row.rate_per_s <= 30_000, row


@pytest.mark.parametrize("stumble", [2, 3])
def test_stumbling_trials_are_run_again_and_never_evidence(tmp_path, stumble):
    p = ModelParams(system_buffer=4000, seed=stumble)
    platform = Generator(p, limit=1e7, stumble=stumble)
    store = store_for(platform, tmp_path)
    row = search_ndr(platform, BASE, store, 100.0, p.true_burst_capacity(), 1e6, TREND)
    mu = saturated_rate(p, 100.0)
    assert abs(row.rate_per_s - mu) <= row.resolution_per_s
    trials = store.trials()
    untrusted = set(trials.loc[trials["trusted"] == False, "trial"])  # noqa: E712
    assert untrusted and untrusted == set(row.untrusted_trials)
    assert not set(row.rests_on) & untrusted
    assert (trials.loc[trials["trial"].isin(untrusted), "verdict"] == "untrusted").all()


@pytest.mark.parametrize("cost_us", [50.0, 200.0])
def test_loss_only_ndr_and_pdr_bracket_the_true_service_rate(tmp_path, cost_us):
    p = ModelParams(system_buffer=2000)
    platform = ModelPlatform(p)
    store = store_for(platform, tmp_path)
    cap = p.true_burst_capacity()
    mu = saturated_rate(p, cost_us)
    ndr = search_ndr_by_loss(platform, BASE, store, cost_us, cap, 1e6, NdrConfig(resolution=0.01))
    pdr = search_ndr(platform, BASE, store, cost_us, cap, 1e6, NdrConfig(resolution=0.01, loss_tolerance=0.05))
    step = ndr.resolution_per_s
    assert mu - 2 * step <= ndr.rate_per_s <= mu + ndr.unresolvable_overload_per_s
    # 5 % loss allowed: the buffer fills, then the path delivers mu of the offered rate
    assert ndr.rate_per_s < pdr.rate_per_s <= mu / 0.95 + 2 * step


def test_every_sustained_trial_records_mu_slope_and_trust(tmp_path):
    p = ModelParams()
    platform = ModelPlatform(p)
    store = store_for(platform, tmp_path)
    search_ndr(platform, BASE, store, 100.0, p.true_burst_capacity(), 1e6, TREND)
    t = store.trials("sustained")
    for column in ("mu_per_s", "mu_low_per_s", "overhead_us", "slope_per_s", "slope_low_per_s", "verdict", "trusted"):
        assert column in t and t[column].notna().all(), column
    assert np.isin(t["verdict"], ["overloaded", "sustained"]).all()



def onset_verdict(out):
    from harness.analysis.verdict import interval_check
    return interval_check(out.onset_s, out.predicted_low_s, out.predicted_high_s, max_width=0.5,
                          interference=[], what="onset").status


@pytest.mark.parametrize("buffer", [2_000, 8_000])
def test_loss_onset_prediction_follows_the_trials_own_service_rate_and_still_catches_a_wrong_capacity(tmp_path, buffer):
    """At 1.5 x mu the onset moves three times as much as mu does; a search whose mu was 6 % low
    (what a busy neighbour does between trials) must not fail the onset, a capacity off by half must."""
    from harness.experiments.onset import measure_onset
    p = ModelParams(system_buffer=buffer, seed=buffer)
    platform = ModelPlatform(p)
    store = store_for(platform, tmp_path)
    cap, batch = p.true_burst_capacity(), p.queue_limit
    row = search_ndr(platform, BASE, store, 100.0, cap, 1e6, TREND)
    assert onset_verdict(measure_onset(platform, BASE, store, row, cap, cap, batch)) == "pass"
    drifted = replace(row, **{k: getattr(row, k) * 0.94 for k in ("mu_per_s", "mu_low_per_s", "mu_high_per_s")})
    out = measure_onset(platform, BASE, store, drifted, cap, cap, batch)
    # the search's mu alone predicts an onset well before the one seen
    assert out.onset_s > (cap + batch) / (out.rate_per_s - drifted.mu_high_per_s), out
    assert onset_verdict(out) == "pass", out
    wrong = measure_onset(platform, BASE, store, row, int(cap * 1.5), int(cap * 1.5), batch)
    assert onset_verdict(wrong) == "fail", wrong


@pytest.mark.parametrize("cost_us,buffer", [(20.0, 1_000), (100.0, 16_500), (500.0, 4_000)])
def test_ndr_expected_range_holds_the_ndr_and_not_a_quarter_more(tmp_path, cost_us, buffer):
    from harness.analysis.sustained import ndr_expected_range
    p = ModelParams(system_buffer=buffer, seed=int(cost_us))
    platform = ModelPlatform(p)
    row = search_ndr(platform, BASE, store_for(platform, tmp_path), cost_us, p.true_burst_capacity(), 1e6, TREND)
    assert row.confirmation.mu_per_s, row.confirmation  # the confirmation trial's own service rate
    low, high = ndr_expected_range(row)
    assert low <= row.rate_per_s <= high < 1.25 * row.rate_per_s, (low, row.rate_per_s, high)
    # a confirmation served faster than the search's trials (a neighbour left) moves the top with it
    fast = 1.08 * row.mu_high_per_s
    faster = replace(row, confirmation=replace(row.confirmation, **{k: fast for k in (
        "mu_per_s", "mu_low_per_s", "mu_high_per_s", "served_low_per_s", "served_high_per_s")}))
    new_low, new_high = ndr_expected_range(faster)
    step = row.resolution * row.rate_per_s
    assert new_low >= low
    assert new_high == pytest.approx(fast + step + row.confirmation.confirmed_resolution_per_s)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rate_that_lost_its_own_confirmation_is_never_the_ndr(tmp_path, monkeypatch, seed):
    """Every confirmation loses (as on a machine that serves a full buffer slower than a short
    trial): the search must end without an NDR, below the last rate that lost, never at it."""
    from harness.experiments.search import SustainedTrials
    original = SustainedTrials.attempt

    def losing(self, rate, duration_s, **tags):
        j = original(self, rate, duration_s, **tags)
        if tags.get("confirmation"):
            j.row.update(verdict="overloaded", verdict_by="lost 100 events", lost=100, interference="")
        return j

    monkeypatch.setattr(SustainedTrials, "attempt", losing)
    p = ModelParams(system_buffer=2_000, seed=seed)
    platform = ModelPlatform(p)
    row = search_ndr(platform, BASE, store_for(platform, tmp_path), 100.0, p.true_burst_capacity(), 1e6, TREND)
    conf = row.confirmation
    assert conf.all_lost and not conf.confirmed
    assert row.rate_per_s is None and row.status == "inconclusive", row
    assert row.first_overloaded_rate_per_s == conf.failed_at_per_s == conf.rate_per_s
    assert "the NDR lies below it" in row.notes[-1]


@pytest.mark.parametrize("interfered_at", [1, 2])
def test_a_confirmation_lost_while_the_machine_interfered_is_no_ndr_either(tmp_path, monkeypatch, interfered_at):
    """CI saw it: the first confirmation lost, the stepped-down second lost while a neighbour was
    busy, and the search reported that second rate as the NDR. A rate that lost is never the NDR:
    the search stops at what that trial served, not confirmed, naming the interference."""
    from harness.experiments.search import SustainedTrials
    original = SustainedTrials.attempt
    seen = []

    def losing(self, rate, duration_s, **tags):
        j = original(self, rate, duration_s, **tags)
        if tags.get("confirmation"):
            seen.append(rate)
            busy = "others 1.6 of 2 cores" if len(seen) == interfered_at else ""
            served = 0.9 * rate  # saturated: served less than offered
            j.row.update(verdict="overloaded", verdict_by="lost 100 events", lost=100, interference=busy,
                         mu_per_s=served, mu_low_per_s=served * 0.99, mu_high_per_s=served * 1.01)
        return j

    monkeypatch.setattr(SustainedTrials, "attempt", losing)
    p = ModelParams(system_buffer=2_000, seed=interfered_at)
    platform = ModelPlatform(p)
    row = search_ndr(platform, BASE, store_for(platform, tmp_path), 100.0, p.true_burst_capacity(), 1e6,
                     replace(TREND, max_confirmations=3))
    conf = row.confirmation
    assert len(seen) == interfered_at, seen  # an interfered loss ends the confirmations
    assert row.rate_per_s == pytest.approx(0.9 * 0.99 * seen[-1], rel=1e-3), (row.rate_per_s, seen)
    assert row.status == "inconclusive" and not row.confirmed, row
    assert conf.failures == interfered_at and conf.failed_at_per_s == round(seen[-1], 3)
    assert row.first_overloaded_rate_per_s == conf.failed_at_per_s > row.rate_per_s
    assert "interfered" in conf.reason and "others 1.6 of 2 cores" in row.status_reasons[0], row


class _SpeedEpisodes(ModelPlatform):
    """The model in 'real time', with the CI VM's speed episodes: during the trials in `fast` the
    whole machine runs 1.6x faster (the callback cost shrinks with it) and the CPU reference says so."""
    capabilities = Capabilities(templates=True, hold=True, ground_truth=True, virtual_time=False)

    def __init__(self, params, fast):
        super().__init__(params)
        self.fast, self.trials_run = fast, 0

    def run_trial(self, spec):
        if self.trials_run in self.fast:
            spec = replace(spec, subscriber=replace(spec.subscriber, cost_us=spec.subscriber.cost_us / 1.6))
        self.trials_run += 1
        return super().run_trial(spec)


def _probe_of(platform):
    class SpeedProbe:
        def begin(self):
            self.trial = platform.trials_run

        def end(self):
            ref = 44.0 if self.trial in platform.fast else 70.0 + (self.trial % 5) - 2  # the run's own scatter
            return {"intf_cpus": 2, "intf_others_cores": None, "intf_cpu_ref_begin_ns": ref, "intf_cpu_ref_end_ns": ref}
    return SpeedProbe


def _search_after_warmup(platform, path):
    """Six short trials of another experiment first (a campaign's burst trials: the run's typical
    speed is known by then), then the search."""
    from harness.experiments.trial import run_recorded
    store = store_for(platform, path)
    for _ in range(6):
        run_recorded(platform, replace(BASE, traffic=TrafficSpec(count=200)), store, "warmup")
    return store, search_ndr(platform, BASE, store, 100.0, platform.params.true_burst_capacity(), 1e6, TREND)


@pytest.mark.parametrize("seed", [4, 5])
def test_a_search_resting_on_a_trial_run_while_the_cpu_was_faster_says_so(tmp_path, monkeypatch, seed):
    """Trials in a fast episode carry it in their interference; an NDR whose evidence includes one
    is inconclusive and names it, one whose evidence does not stays conclusive."""
    import harness.experiments.trial as trial
    p = ModelParams(system_buffer=2_000, seed=seed)
    quiet = _SpeedEpisodes(p, fast=set())
    monkeypatch.setattr(trial, "Probe", _probe_of(quiet))
    _, expected = _search_after_warmup(quiet, tmp_path / "q")
    assert expected.status == "conclusive" and not expected.interference, expected.status_reasons
    for fast, resting in (({expected.rests_on[-1]}, True), ({5}, False)):
        episodes = _SpeedEpisodes(p, fast=fast)
        monkeypatch.setattr(trial, "Probe", _probe_of(episodes))
        store, row = _search_after_warmup(episodes, tmp_path / str(resting))
        flagged = {r["trial"] for r in store.rows if "faster than this run's typical" in r["interference"]}
        assert flagged == fast, (flagged, fast)
        assert bool(flagged & set(row.rests_on)) == resting, (row.rests_on, flagged)
        if resting:
            assert row.status == "inconclusive" and "CPU ran 5" in "; ".join(row.status_reasons), row.status_reasons
        else:
            assert row.status == "conclusive" and row.rate_per_s == expected.rate_per_s, row.status_reasons


def test_a_failed_confirmation_under_a_template_steps_down_in_offered_packets_not_events():
    """mu counts events; rates are offered in packets, of which a template lets `expected_share`
    through. A confirmation at 34,587/s that lost while the machine interfered, having served 7,850
    events/s of a quarter: the result stands at the packets whose events were served (31,400/s),
    not at 7,850/s (CI's fake run on 2026-11-28 read the template's gain as x0.88 instead of ~x4)."""
    from harness.experiments.search import Judged, SustainedTrials
    from harness.experiments.ndr import _confirm
    from harness.analysis.sustained import offered_rate

    row = {"trial": 7, "trusted": True, "verdict": "overloaded", "verdict_by": "backlog slope", "lost": 0,
           "mu_per_s": 7850.0, "mu_low_per_s": 7850.0, "mu_high_per_s": 7900.0, "expected_share": 0.25,
           "interference": "sender p99 lateness 1.9 ms", "slope_per_s": 400.0, "slope_low_per_s": 300.0,
           "slope_high_per_s": 500.0}
    s = SustainedTrials(None, None, None, 100.0, None, NdrConfig(), "template", {})
    s.judged.append(Judged(dict(row)))
    s.attempt = lambda rate, duration, **tags: Judged(dict(row))
    out = _confirm(s, 34_587.0, None)
    assert offered_rate(7850.0, row) == 31_400.0
    assert out.rate_per_s == 31_400.0 and not out.confirmed
    # without a template, the same trial steps down to what it served, as before
    plain = {**row, "expected_share": 1.0}
    s.judged[-1] = Judged(dict(plain))
    s.attempt = lambda rate, duration, **tags: Judged(dict(plain))
    assert _confirm(s, 34_587.0, None).rate_per_s == 7850.0
