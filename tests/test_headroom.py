"""The headroom search and the replay, as experiments writing typed records, on the model: traces
with answers computed by hand are bracketed to within the search's resolution and confirmed; the
verdicts (conclusive, inconclusive, generator-limited) follow what the trials showed; a Python
subscriber's measured cost drives the model; events per flow count flows; the agent scenario
fails below the required headroom and the report answers the question."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from harness.agent import load_agent
from harness.analysis.verdict import FAIL, INCONCLUSIVE, PASS, headroom_verdict, replay_verdict
from harness.campaign import Campaign, load_expectations
from harness.experiments.headroom import HeadroomConfig, search_headroom
from harness.platforms.model import ModelParams, ModelPlatform
from harness.results.fingerprint import fingerprint
from harness.results.records import HeadroomResult
from harness.results.runs import load_run
from harness.results.store import ResultStore
from harness.spec import FilterSpec, SubscriberSpec, TrafficSpec, TrialSpec
from harness.traffic.shapes import on_off
from session_runs import run, scenario_cmd
from test_trace_replay import G_NS, HAND, N, X_STAR, captured, hand_spec, hand_trace


@pytest.fixture
def store(tmp_path):
    return ResultStore(tmp_path, fingerprint({"platform": "model"}), "model")


def test_the_search_brackets_the_computed_scale_and_confirms_it(store):
    """x* = 2.500001 (test_trace_replay's hand computation): bracketed to 0.1 %, confirmed by a
    replay at the result, and at the first lossy scale each of the five bursts loses its last event,
    the first one as the first burst ends."""
    out = search_headroom(ModelPlatform(HAND), hand_spec(hand_trace()), store, HeadroomConfig(resolution=1e-3))
    assert out.headroom < X_STAR <= out.first_lossy_scale and out.first_lossy_scale / out.headroom - 1 <= 1e-3
    assert out.status == "conclusive" and out.confirmed and out.confirmations == 1 and out.resolved
    assert out.lost_at_lossy == 5 and out.expected_at_lossy == 5 * N
    assert out.onset_at_lossy_s == pytest.approx((N - 1) * G_NS / out.first_lossy_scale / 1e9, abs=1e-6)
    assert out.sentence.startswith(f"your trace at {out.headroom:.3g}x loses nothing; at {out.first_lossy_scale:.3g}x "
                                   "it loses 0.1% starting 0.0599 s in")
    confirmation = [(t.scale, t.lost) for t in out.trials if t.role == "confirmation"]
    assert confirmation == [(out.headroom, 0), (out.first_lossy_scale, 5)]  # each side replayed once more
    assert out.rests_on == sorted({*[t.trial for t in out.trials if t.scale == out.headroom],
                                   max(t.trial for t in out.trials if t.scale == out.first_lossy_scale)})
    assert HeadroomResult.from_json(json.loads(json.dumps(out.to_json()))) == out
    assert len(store.rows) == len(out.trials)  # every trial recorded, tagged with its scale and role
    assert {r["role"] for r in store.rows} == {"search", "confirmation"} and all("headroom_scale" in r for r in store.rows)


def below_one() -> tuple[ModelParams, float, TrialSpec]:
    """A slower subscriber (300 us) and a smaller buffer (199): x* = (N-1) g / ((N-C-1) s + 1/2) < 1."""
    s_ns, b = 300_000, 199
    x_star = (N - 1) * G_NS / ((N - (1 + b) - 1) * s_ns + 0.5)
    return replace(HAND, system_buffer=b), x_star, TrialSpec(TrafficSpec.replay(hand_trace()),
                                                            SubscriberSpec(cost_us=s_ns / 1000))


def test_headroom_below_one_is_the_headline(store):
    params, x_star, spec = below_one()
    assert 0.62 < x_star < 0.63
    out = search_headroom(ModelPlatform(params), spec, store, HeadroomConfig(resolution=0.005))
    assert out.headroom < x_star <= out.first_lossy_scale and out.first_lossy_scale / out.headroom - 1 <= 0.005
    assert out.status == "conclusive" and out.sentence.startswith("events are lost at the trace's own speed: "
                                                                  f"your trace at {out.headroom:.3g}x loses nothing")
    assert [t.scale for t in out.trials[:2]] == [1.0, 0.5]  # lossy at 1x: it halved down first


def test_a_search_started_above_finds_the_same_bracket(store):
    trace = hand_trace().scaled(16)
    out = search_headroom(ModelPlatform(HAND), hand_spec(trace), store, HeadroomConfig(resolution=1e-3))
    assert out.start_scale == 16 and out.trials[0].scale == 16 and out.trials[0].lost > 0
    assert out.headroom < X_STAR <= out.first_lossy_scale


class Interfered(ModelPlatform):
    """The model, with something outside the trace taking a hand: the first replay at a scale in
    `drop_at` loses one delivered event (a machine that dropped one, once), above `unkept_above`
    the sender misses its schedule (the generator's own report says so)."""

    def __init__(self, params, drop_at=(), unkept_above=None):
        super().__init__(params)
        self.drop_at, self.unkept_above = list(drop_at), unkept_above

    def run_trial(self, spec):
        result = super().run_trial(spec)
        scale = spec.traffic.schedule.scale
        if any(abs(scale - s) < 1e-9 for s in self.drop_at):
            self.drop_at = [s for s in self.drop_at if abs(scale - s) >= 1e-9]
            result.delivered = result.delivered.iloc[1:].reset_index(drop=True)
        if self.unkept_above is not None and scale > self.unkept_above:
            result.generator = {"trusted": False, "reason": f"fell behind schedule at {scale:g}x", "lag_max_events": 900}
        return result


def test_loss_that_is_not_monotone_in_the_scale_is_inconclusive(store):
    """The search doubles from 1x to 2x, where the machine drops an event once: the bisection then
    stays below 2x, but 2x replayed again loses nothing: the machine decided, not the trace."""
    out = search_headroom(Interfered(HAND, drop_at=(2.0,)), hand_spec(hand_trace()), store,
                          HeadroomConfig(resolution=1e-2))
    assert out.first_lossy_scale == 2.0 and out.headroom < 2.0 < X_STAR  # what the search alone would say
    assert out.status == "inconclusive"
    assert any(r.startswith("loss was not monotone in the scale: 2x lost 1 in trial") for r in out.status_reasons)
    # without the machine's hand the same search is conclusive
    again = search_headroom(Interfered(HAND, drop_at=()), hand_spec(hand_trace()), store, HeadroomConfig(resolution=1e-2))
    assert again.status == "conclusive" and again.headroom < X_STAR <= again.first_lossy_scale
    verdict = headroom_verdict(out.headroom, out.first_lossy_scale, out.status, out.status_reasons, 1.5, out.sentence)
    assert verdict.status == INCONCLUSIVE  # a skip, never a failure


def test_a_sender_that_cannot_keep_up_leaves_a_lower_bound(store):
    """Above 2x the sender misses the schedule (x* = 2.5 is out of its reach): the headroom is at
    least what it could play, which passes a requirement below it and decides nothing above."""
    out = search_headroom(Interfered(HAND, unkept_above=2.0), hand_spec(hand_trace()), store, HeadroomConfig())
    assert out.status == "generator-limited" and out.headroom == 2.0 and out.first_lossy_scale is None
    assert out.confirmed and out.untrusted_trials and "at least 2x" in out.status_reasons[0]
    args = (out.headroom, out.first_lossy_scale, out.status, out.status_reasons)
    assert headroom_verdict(*args, 1.5, out.sentence).status == PASS
    assert headroom_verdict(*args, 3.0, out.sentence).status == INCONCLUSIVE


def test_verdicts():
    assert headroom_verdict(3.2, 3.6, "conclusive", [], 1.5, "s").status == PASS
    failed = headroom_verdict(0.8, 0.85, "conclusive", [], 1.5, "s")
    assert failed.status == FAIL and failed.message.startswith("headroom 0.8x < required 1.5x")
    assert headroom_verdict(None, 1 / 64, "conclusive", [], 1.5, "s").status == FAIL
    assert headroom_verdict(3.2, 3.6, "inconclusive", ["interference"], 1.5, "s").status == INCONCLUSIVE
    assert headroom_verdict(3.2, 3.6, "conclusive", [], None, "s").status == PASS
    assert replay_verdict(0, 10, True, "", [], 1.0, None).status == PASS
    lost = replay_verdict(3, 10, True, "", [], 2.0, 0.5)
    assert lost.status == FAIL and lost.message == "replay at 2x: 3 of 10 events lost (30.00%), the first 0.5 s in"
    assert replay_verdict(3, 10, True, "", ["other processes used 1.9 of 2 cores"], 2.0, 0.5).status == INCONCLUSIVE
    assert replay_verdict(3, 10, False, "fell behind", [], 2.0, 0.5).status == INCONCLUSIVE


def test_the_campaign_replays_and_searches_an_agent_with_events_per_flow(tmp_path):
    """A capture's flows: at the ALE layer one event per flow (its first packet), at a transport
    layer one per packet; the replay and the headroom are written as the campaign's records, and
    the run's report answers with both."""
    trace = captured(tmp_path)
    sub = SubscriberSpec(cost_us=30.0)
    params = ModelParams(queue_limit=16, system_buffer=100)
    results = {}
    for layer in ("ALE_AUTH_CONNECT_V4", "OUTBOUND_TRANSPORT_V4"):
        agent = load_agent({"--traffic-capture": trace.provenance.source}, None)
        agent = replace(agent, layer=layer, subscriber=sub,
                        trace=agent.trace.with_trace_events("flows" if layer.startswith("ALE") else "packets"))
        c = Campaign.open(ModelPlatform(params), str(tmp_path / "reports"), "quick", load_expectations(None), "flows",
                          agent=agent)
        results[layer] = (c.replay(), c.headroom(), c.store.path)
    ale, transport = results["ALE_AUTH_CONNECT_V4"][0], results["OUTBOUND_TRANSPORT_V4"][0]
    assert ale.expected == trace.flow_count and ale.delivered + ale.lost == ale.expected
    assert ale.trace_events == "flows" and "classifies a flow's first packet" in ale.trace_events_why
    assert transport.expected == trace.count and transport.delivered + transport.lost == transport.expected
    # fewer events from the same packets: more headroom
    assert results["ALE_AUTH_CONNECT_V4"][1].headroom > results["OUTBOUND_TRANSPORT_V4"][1].first_lossy_scale
    run_dir = results["ALE_AUTH_CONNECT_V4"][2]
    summary = load_run(run_dir).summary
    assert summary.estimates.get("headroom").value == results["ALE_AUTH_CONNECT_V4"][1].headroom
    assert summary.experiments.replay == ale
    assert summary.fingerprint.stable["platform"]["agent"]["trace"]["digest"] == trace.digest


# a Python subscriber, timed on the model: its module is this one
CALLS: list[bytes] = []
SPIN_NS = [0]


def python_subscriber(event: bytes) -> None:
    import time
    CALLS.append(event)
    until = time.perf_counter_ns() + SPIN_NS[0]
    while time.perf_counter_ns() < until:
        pass


def test_a_python_subscriber_is_timed_on_the_model(store):
    """Called once per event with the test packet's bytes; its measured time is the event's work,
    so a slow one loses where a fast one does not; measured once per trace and reused by every scale."""
    trace = on_off(mean_rate_per_s=1000, burst_rate_per_s=20_000, burst_s=0.05, duration_s=1)  # bursts of 1000
    spec = TrialSpec(TrafficSpec.replay(trace), SubscriberSpec(function=f"{__name__}:python_subscriber"),
                     FilterSpec(layer="OUTBOUND_TRANSPORT_V4"))
    params = ModelParams(queue_limit=16, system_buffer=100)
    lost = {}
    for spin_us in (0, 300):
        CALLS.clear()
        SPIN_NS[0] = spin_us * 1000
        platform = ModelPlatform(params)
        result = platform.run_trial(spec)
        assert len(CALLS) == trace.count and all(len(b) == 44 and b[0] >> 4 == 4 and b[9] == 17 for b in CALLS)
        ports = [int.from_bytes(b[22:24], "big") for b in CALLS]
        assert ports == list(range(20000, 20000 + trace.count))  # the packets the events stand for, in order
        assert result.telemetry["function_errors"] == 0
        lost[spin_us] = result.sent_count - result.delivered_count
        assert result.telemetry["function_cost_p50_us"] >= spin_us
        platform.run_trial(spec)
        assert len(CALLS) == trace.count  # the second trial reused the measured times
    assert lost[0] == 0 and lost[300] > 0


@pytest.mark.subprocess
@pytest.mark.parametrize("required,code", [(0.5, 0), (40.0, 1)])
def test_the_agent_scenario_fails_below_the_required_headroom(tmp_path, required, code):
    """pytest scenarios/test_my_agent.py --agent agent.toml, as a team's CI runs it."""
    (tmp_path / "costs.csv").write_text("cost_us,count\n20,90\n200,10\n")  # a histogram with a tail
    (tmp_path / "agent.toml").write_text(
        "[traffic]\nshape = \"on-off:mean=2000,burst=40000,length=0.1,duration=1\"\n"
        f"[subscriber]\ncost = 'costs.csv'\n[headroom]\nrequired = {required}\nresolution = 0.05\n")
    cmd = scenario_cmd(tmp_path / "reports", "--agent", str(tmp_path / "agent.toml"), "--model-param",
                       "system_buffer=2000", "--model-param", "queue_limit=64")
    cmd[cmd.index("-q") - 1] += "/test_my_agent.py"
    p = run(cmd, tmp_path / "live")
    out = p.stdout + p.stderr
    assert p.returncode == code, out[-3000:]
    (run_dir,) = list((tmp_path / "reports").glob("*/*"))
    summary = load_run(run_dir).summary
    h = summary.experiments.headroom
    assert h.status == "conclusive" and summary.estimates.get("headroom").value == h.headroom and h.required == required
    report = (run_dir / "report.md").read_text()
    assert "## Your traffic, your subscriber" in report and h.sentence in report and "## Headroom search" in report
    assert all((run_dir / f"{name}.png").stat().st_size > 0
               for name in ("trace_profile", "replay_backlog", "replay_loss", "subscriber_cost"))
    if code:
        assert f"headroom {h.headroom:.3g}x < required {required:g}x" in out


def test_in_real_time_the_search_goes_no_slower_than_its_replay_budget(store):
    """x* = 0.62 lies below what a 6 s budget allows this ~4.2 s trace (0.7x): the search stops
    there, the headroom is not found, and the result says the trace lost even at the slowest scale."""
    params, x_star, spec = below_one()
    budget = spec.traffic.schedule.duration_s / 0.7
    out = search_headroom(ModelPlatform(params), spec, store, HeadroomConfig(resolution=0.01, max_replay_s=budget))
    assert out.headroom is None and out.first_lossy_scale == pytest.approx(0.7) and x_star < 0.7
    assert max(t.scale for t in out.trials) == 1.0 and min(t.scale for t in out.trials) == pytest.approx(0.7)
    assert "lost events even at 0.7x" in out.notes[-1]
    assert headroom_verdict(out.headroom, out.first_lossy_scale, out.status, out.status_reasons, 1.0,
                            out.sentence).status == FAIL


def test_require_headroom_fails_a_run_without_a_conclusive_one():
    """--require headroom: an inconclusive headroom (its evidence says so) is unmet, with its reasons."""
    from harness.judge import require
    from harness.results.records import RunSummary

    def summary(status, reasons=()):
        headroom = {"value": 2.4, "first_lossy_scale": 2.5, "status": status, "status_reasons": list(reasons)}
        return RunSummary.from_json({"platform": "model", "config_id": "box-model-0", "estimates": {"headroom": headroom}})

    assert require.parse("headroom") == ["headroom"]
    assert require.judge(summary("conclusive"), ["headroom"])[0] == []
    unmet, _ = require.judge(summary("inconclusive", ["interference in the trials it rests on: load 6"]), ["headroom"])
    assert [(u.name, u.why) for u in unmet] == [("headroom", "inconclusive: interference in the trials it rests on: load 6")]


def test_the_report_answers_for_an_agent_that_loses_today(tmp_path):
    """An agent whose trace loses at its own speed (below_one: x* = 0.62): the report's verdict says
    so right after the run's line, with the headroom and the first lossy scale; the replay's table
    gives the loss and when it began. When is known beforehand: a burst's backlog grows at 1/g - 1/s
    events per second and overflows Q + B = 200 places ~60 ms into the first burst."""
    from harness.agent import Agent
    from harness.report.render import render
    params, x_star, spec = below_one()
    trace = spec.traffic.schedule
    agent = Agent(trace, trace, "OUTBOUND_TRANSPORT_V4", spec.subscriber, resolution=0.01)
    platform = ModelPlatform(params)
    c = Campaign.open(platform, str(tmp_path / "reports"), "quick",
                      load_expectations(None, {"queue_limit": 1, "buffer_depth": 199}), "agent", agent=agent)
    r, h = c.replay(), c.headroom()
    fluid_s = (1 + params.system_buffer) / (1e9 / G_NS - 1e9 / 300_000)
    assert r.lost > 0 and r.first_loss_s == pytest.approx(fluid_s, abs=0.0005)
    assert r.queue_limit == 1 and r.capacity == 200 and r.peak_backlog >= 200
    assert h.headroom < x_star <= h.first_lossy_scale and h.status == "conclusive"
    render(c.store.path)
    md = (c.store.path / "report.md").read_text()
    verdict = md.split("## ", 2)[1].splitlines()
    lines = [line for line in verdict if line.startswith("- ")]
    assert lines[0].startswith("- Run: ")
    assert lines[1].startswith("- Your traffic and subscriber: events are lost at the trace's own speed: your trace "
                               f"at {h.headroom:.3g}x loses nothing; at {h.first_lossy_scale:.3g}x it loses")
    assert f"| delivered / lost | {r.delivered:,} / {r.lost:,} of {r.expected:,} ({r.loss_ratio:.2%}) |" in md
    assert f"| first loss | {r.first_loss_s:.4g} s after the first packet |" in md
    assert all((c.store.path / f"{name}.png").stat().st_size > 0
               for name in ("trace_profile", "replay_backlog", "replay_loss"))
