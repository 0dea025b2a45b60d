"""Your traffic, your subscriber: will this agent lose events on this machine, and with how much
headroom? Copy this module into your own scenarios folder (docs/your-agent.md), describe the agent
in agent.toml and run

    pytest scenarios/ --agent agent.toml           # or just this module: pytest scenarios/test_my_agent.py

The trace (a capture, a netsh net-event export or a shape) is replayed to the harness's own
blocked tuples with the agent's subscriber (its cost distribution, its Python function or, on
wfp, its native library), once at its scale, then searched for the largest speed-up served
without loss. The session fails when the headroom is below the required one and skips, never
fails, when the machine kept the answer from being trusted (the report says why). Without an
agent the module skips."""
import pytest

from harness.analysis.verdict import headroom_verdict, replay_verdict
from verdicts import settle


@pytest.fixture(scope="module")
def agent(campaign):
    if campaign.agent is None:
        pytest.skip("no agent given: --agent agent.toml, or --traffic-capture/--traffic-netevents/--traffic-shape "
                    "(docs/your-agent.md)")
    return campaign.agent


def test_the_trace_replays_without_loss(campaign, agent):
    """At the agent's own scale: delivered, lost and when, the peak backlog, latency, sender lateness."""
    r = campaign.replay()
    settle(campaign, f"replay at {r.scale:g}x loses nothing",
           replay_verdict(r.lost, r.expected, r.trusted, r.untrusted_reason, r.interference, r.scale, r.first_loss_s))


def test_headroom_meets_the_requirement(campaign, agent):
    """The largest speed-up of the trace served without loss, against [headroom] required."""
    h = campaign.headroom()
    settle(campaign, "headroom",
           headroom_verdict(h.headroom, h.first_lossy_scale, h.status, h.status_reasons, agent.required, h.sentence))
