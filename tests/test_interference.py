"""Interference: CPU used by others (not by the harness or its sender), steal, and the words a
report uses for it."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.host import _cpu_line
from harness.interference import Probe, flags

STAT = """cpu  1000 10 500 8000 100 5 5 40 0 0
cpu0 500 5 250 4000 50 2 2 20 0 0
intr 12345
ctxt 999
procs_running 3
procs_blocked 0
"""


def test_reads_cpu_totals_steal_and_run_queue(tmp_path):
    (tmp_path / "stat").write_text(STAT)
    total, idle, steal, running = _cpu_line(tmp_path)
    assert (total, idle, steal, running) == (1000 + 10 + 500 + 8000 + 100 + 5 + 5 + 40, 8100, 40, 3)


def test_without_proc_nothing_is_measured_and_nothing_breaks(tmp_path, alone):
    """Windows has no /proc: the figures are None ("not measured"), never zero."""
    probe = Probe(proc=tmp_path / "missing")
    probe.begin()
    out = probe.end()
    assert out["intf_others_cores"] is None and out["intf_steal_share"] is None and out["intf_own_cores"] is None
    assert out["intf_cpu_ref_begin_ns"] > 0 and out["intf_cpu_ref_end_ns"] > 0  # the CPU's speed needs no /proc
    assert not out["intf_other_runs"]
    assert flags(out) == []


def spin_cpu(seconds: float) -> None:
    """Busy until this process has used `seconds` of CPU (not wall) time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.realtime
@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs /proc")
def test_own_work_is_own_and_a_neighbour_is_other():
    probe = Probe()
    probe.begin()
    wall0, cpu0 = time.monotonic(), time.process_time()
    spin_cpu(0.5)
    mine = probe.end()
    own = (time.process_time() - cpu0) / (time.monotonic() - wall0)  # whatever share a busy machine gave
    assert mine["intf_own_cores"] == pytest.approx(own, rel=0.2, abs=0.05), (mine, own)
    # a busy process that is not ours (the shell that starts it exits, so it is nobody's child here)
    pid = int(subprocess.run(["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, check=True).stdout)
    try:
        time.sleep(0.2)
        probe.begin()
        time.sleep(1.0)
        theirs = probe.end()
    finally:
        os.kill(pid, 9)
    assert theirs["intf_own_cores"] <= 0.2, theirs  # sleeping while the neighbour spins
    assert theirs["intf_others_cores"] >= 0.5, theirs
    assert any("other processes used" in f for f in flags(theirs))


def test_flags_name_each_kind_of_interference():
    row = {"intf_cpus": 2, "intf_others_cores": 1.1, "intf_steal_share": 0.05, "gen_late_p99_us": 12_000.0,
           "mu_stall_share": 0.3, "intf_other_runs": 1}
    words = "; ".join(flags(row))
    for part in ("1.10 of 2 cores", "steal 5.0%", "lateness 12.0 ms", "stalled 30.0%", "1 other harness run"):
        assert part in words
    assert flags({"intf_cpus": 2, "intf_others_cores": 0.05, "gen_late_p99_us": 80.0, "mu_stall_share": 0.0}) == []


def test_worst_of_several_trials_gives_one_line():
    from harness.interference import worst
    rows = [{"intf_cpus": 2, "intf_others_cores": 0.5, "gen_late_p99_us": 3000.0},
            {"intf_cpus": 2, "intf_others_cores": 1.5, "gen_late_p99_us": float("nan"), "mu_stall_share": 0.1}]
    words = flags(worst(rows))
    assert words == ["other processes used 1.50 of 2 cores", "sender p99 lateness 3.0 ms",
                     "subscriber stalled 10.0% of its service time"]


@pytest.mark.subprocess
def test_another_live_harness_run_is_counted_and_named(tmp_path, alone):
    """A second run registered in the live-run registry (here: a child process standing in for
    it) shows in the trial's interference record and in its flags."""
    other = subprocess.Popen([sys.executable, "-c",
                              "import sys, time; from harness import live_runs; "
                              "live_runs.register('nflog', None, 'now'); print('ready', flush=True); "
                              "sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        probe = Probe(proc=tmp_path / "missing")
        probe.begin()
        out = probe.end()
        assert out["intf_other_runs"] == 1
        assert "1 other harness run(s) alive" in flags(out)
    finally:
        other.stdin.close()
        other.wait(timeout=10)


def test_a_cpu_speed_off_the_runs_typical_is_named_with_its_reference():
    """What the CI VM does: the reference sits at 62-81 ns and, for seconds, at 42-48 ns."""
    from harness.interference import speed_columns, speed_flag
    earlier = [70.0, 66.0, 73.0, 69.0, 71.0, 64.0, 75.0, 68.0, 70.0, 72.0]
    assert speed_columns((44.0, 71.0), earlier[:7]) == {}  # too few to know the run's typical
    fast = speed_columns((44.0, 71.0), earlier)
    assert fast["intf_cpu_typical_ns"] == 70.0 and fast["intf_cpu_speed_off"] == pytest.approx(70 / 44 - 1, abs=1e-3)
    assert speed_flag(fast) == "CPU ran 59% faster than this run's typical (reference 44 vs 70 ns)"
    assert "CPU ran 59% faster" in "; ".join(flags({**fast, "intf_cpus": 2}))
    slow = speed_columns((71.0, 95.0), earlier)
    assert speed_flag(slow).startswith("CPU ran 26% slower") and slow["intf_cpu_speed_off"] < 0
    assert speed_flag(speed_columns((66.0, 75.0), earlier)) is None  # the run's own scatter
    # a run whose references scatter widely allows as much: 3 robust standard deviations
    wide = [50.0, 60.0, 70.0, 80.0, 90.0, 55.0, 65.0, 75.0, 85.0]
    limit = speed_columns((70.0, 70.0), wide)["intf_cpu_speed_limit"]
    assert limit > 0.5 and speed_flag(speed_columns((52.0, 52.0), wide)) is None


def test_the_cpu_reference_times_the_interpreter():
    """The reference is the fastest of its repeats: a stretch of real work, not a constant."""
    from harness.host import REFERENCE_LOOPS, cpu_reference_ns
    start = time.perf_counter_ns()
    ref = cpu_reference_ns(repeats=3)
    elapsed = time.perf_counter_ns() - start
    assert 1.0 < ref < 5_000.0
    assert ref * REFERENCE_LOOPS * 3 <= elapsed * 1.01  # three repeats, each at least the fastest


def test_events_of_others_in_the_same_queue_are_interference_beyond_one_percent():
    from harness.interference import flags, worst
    assert flags({"intf_shared_events": 3, "intf_shared_share": 0.01}) == []  # 1 %: the limit, not beyond
    said = flags({"intf_shared_events": 40, "intf_shared_share": 0.02})
    assert said == ["40 events not the trial's own (other filters' drops, other event types, other programs' "
                    "packets) shared the delivery queue: 2% of its own"]
    rows = [{"intf_shared_events": 5000, "intf_shared_share": 0.01}, {"intf_shared_events": 900, "intf_shared_share": 0.3}]
    assert (worst(rows)["intf_shared_share"], worst(rows)["intf_shared_events"]) == (0.3, 900)  # one trial's pair
    assert flags({"intf_shared_events": None, "intf_shared_share": None}) == []  # nflog, the model: not counted
