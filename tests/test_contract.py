"""One behavioural contract, every platform available here (psutil's test_contracts idea):
trial accounting, hold and release, loss by sequence, record layout, cleanup."""
import numpy as np
import pytest

from harness.analysis.loss import loss_by_sequence
from harness.platforms.base import DELIVERED_COLUMNS, SENT_COLUMNS, Platform
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
from platforms import make
from under_load import watched

REAL = [pytest.mark.root, pytest.mark.realtime]  # a namespace of its own, trials in real time
PLATFORMS = [pytest.param("model"), pytest.param("nflog", marks=REAL), pytest.param("wfp", marks=REAL)]


@pytest.fixture(params=PLATFORMS, scope="module")
def platform(request):
    p = make(request.param)
    yield p
    p.close()


def held(count, cost_us=2.0):
    return TrialSpec(TrafficSpec(count=count), SubscriberSpec(cost_us=cost_us, hold=True), drain_quiet_s=0.3)


def test_is_a_platform(platform):
    assert isinstance(platform, Platform)
    assert platform.describe()["platform"] == platform.name
    assert platform.max_send_rate_per_s() > 0
    assert platform.measured()["max_send_rate_per_s"] > 0


def test_small_held_burst_is_delivered_whole_in_order(platform):
    r = platform.run_trial(held(200))
    for columns, frame in ((SENT_COLUMNS, r.sent), (DELIVERED_COLUMNS, r.delivered)):
        assert [c for c in frame.columns if c in columns] == list(columns)
        assert all(frame[c].dtype == np.int64 for c in columns)
    loss = loss_by_sequence(r.sent, r.delivered)
    assert (loss.expected, loss.delivered, loss.lost, loss.duplicates, loss.unexpected) == (200, 200, 0, 0, 0)
    by_callback = r.delivered.sort_values("t_callback_ns", kind="stable")
    assert np.all(np.diff(by_callback["seq"].to_numpy()) > 0)  # FIFO
    first = by_callback.iloc[0]
    assert first["t_done_ns"] >= r.t_release_ns  # the first callback was held until the release
    assert np.all(r.delivered["t_callback_ns"] >= r.delivered["t_event_ns"] - 1_000_000)


def test_oversized_held_burst_loses_only_the_tail(platform):
    r = platform.run_trial(held(30_000))
    loss = loss_by_sequence(r.sent, r.delivered)
    assert loss.lost > 0 and loss.delivered > 0
    assert loss.lost_head == 0 and loss.lost_middle == 0 and loss.lost_tail == loss.lost
    assert loss.delivered + loss.lost == 30_000


def test_light_sustained_load_loses_nothing(platform):
    # 8,000/s at 10 us is a tenth of what the path serves: on a quiet machine nothing is lost and
    # events arrive within milliseconds, not by a flush timer. A CPU hog can starve the subscriber
    # (seen: 1,600 of 4,000 lost on nflog, a 74 ms median on wfp); then the trial must say so.
    spec = TrialSpec(TrafficSpec(count=4000, pacing="constant", rate_per_s=8000), SubscriberSpec(cost_us=10),
                     drain_quiet_s=0.3)
    r, noise = watched(platform, spec)
    loss = loss_by_sequence(r.sent, r.delivered)
    assert (loss.duplicates, loss.unexpected) == (0, 0)
    lat = r.delivered["t_callback_ns"].to_numpy() - r.sent.set_index("seq").loc[r.delivered["seq"], "t_send_ns"].to_numpy()
    median_ms = float(np.median(lat)) / 1e6
    missed = ([f"lost {loss.lost}"] if loss.lost else []) + ([f"median latency {median_ms:.1f} ms"] if median_ms >= 5 else [])
    assert not missed or noise, f"{', '.join(missed)} on a quiet machine"
    if missed:
        print(f"{platform.name}: {', '.join(missed)} while {'; '.join(noise)}")


def test_close_is_idempotent():
    p = make("model")
    p.close()
    p.close()
