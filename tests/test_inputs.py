"""Every input of the README's table "Bad input": one line that names it, exit status 2, and
nothing opened (no platform, no run folder) before it is refused."""
import json
import os
import subprocess

import pytest

from harness.cli import main as cli_main
from harness.inputs import BadInput
from harness.plugin.options import RUN_OPTIONS, run_options
from session_runs import run, scenario_cmd


class Options:
    """A pytest config stand-in: getoption() answers from the given options, else the defaults."""

    def __init__(self, **given):
        self.given = {"--resume": None, **{name: default for name, (default, _) in RUN_OPTIONS.items()}, **{f"--{k.replace('_', '-')}": v for k, v in given.items()}}

    def getoption(self, name):
        return self.given[name]


def expect_file(tmp_path, content):
    path = tmp_path / "expect.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


# (options, the line the user sees); each row of the README table has one here
SCENARIO_ROWS = [
    ({"expect": '"queue_limit"'}, "must hold a JSON object such as"),
    ({"expect": [256]}, "must hold a JSON object such as"),
    ({"expect": {"queue_limit": "256"}}, "queue_limit in expectations file .* must be a whole number, got '256'"),
    ({"expect": {"system_buffer": "abc"}}, "system_buffer in expectations file .* must be a whole number"),
    ({"expect": {"system_buffer_tolerance": -1}}, "system_buffer_tolerance .* must be within 0..10, got -1"),
    ({"expect": {"queue_limit": True}}, "must be a whole number, got True"),
    ({"expect": '{"system_buffer_tolerance": NaN}'}, "not valid JSON"),
    ({"expect": {"queue_size": 5}}, "unknown keys in expectations file .*: queue_size"),
    ({"model_param": ["dispatch_latency_us=nan"]}, "dispatch_latency_us must be a finite number, got nan"),
    ({"model_param": ["sender_rate_per_s=inf"]}, "sender_rate_per_s must be a finite number, got inf"),
    ({"model_param": ["queue_limit=1000000000"]}, "queue_limit must be within 1..100000, got 1000000000"),
    ({"model_param": ["system_buffer=300000"]}, "burst capacity of 300,277 events; the burst search reaches 262,144"),
    ({"model_param": ["queue_limit=lots"]}, "queue_limit needs a whole number, got 'lots'"),
    ({"model_param": ["seed=-1"]}, "seed must be within 0.."),
    ({"model_param": ["queue_limit=1", "queue_limit=2"]}, "--model-param queue_limit is given twice"),
    ({"backend": "nflog", "nflog_param": ["rcvbuf=1099511627776"]}, "rcvbuf must be within 4096..1073741823"),
    ({"backend": "nflog", "nflog_param": ["qthresh=99999999999"]}, "qthresh must be within 1..4294967295"),
    ({"backend": "nflog", "nflog_param": ["qthresh=0"]}, "qthresh must be within 1..4294967295, got 0"),
    ({"backend": "nflog", "nflog_param": ["sender=tcp"]}, "sender must be udp or raw"),
    ({"backend": "quantum"}, "--backend must be one of auto, model, wfp, nflog"),
    ({"profile": "fast"}, "--profile must be one of quick, full"),
    ({"report_dir": "/proc/wfpcap"}, "--report-dir /proc/wfpcap is not writable"),
]


@pytest.mark.parametrize("given,line", SCENARIO_ROWS, ids=[str(i) for i in range(len(SCENARIO_ROWS))])
def test_scenario_inputs_are_refused_with_one_line(tmp_path, given, line):
    given = dict(given)
    if "expect" in given:
        given["expect"] = expect_file(tmp_path, given["expect"])
    given.setdefault("report_dir", str(tmp_path / "reports"))
    with pytest.raises(BadInput, match=line):
        run_options(Options(**given))
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def test_report_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(BadInput, match="is not a directory"):
        run_options(Options(report_dir=str(target)))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: the read-only mount below proves it as root")
def test_report_dir_that_is_not_writable_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        with pytest.raises(BadInput, match="is not writable: Permission denied"):
            run_options(Options(report_dir=str(locked)))
    finally:
        os.chmod(locked, 0o700)


@pytest.mark.root
def test_report_dir_on_a_read_only_mount_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)]).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        with pytest.raises(BadInput, match="is not writable: Read-only file system"):
            run_options(Options(report_dir=str(ro)))
    finally:
        subprocess.run(["umount", str(ro)])


def test_null_means_not_checked_for_both_counts(tmp_path):
    opts = run_options(Options(expect=expect_file(tmp_path, {"queue_limit": None, "system_buffer": None}),
                               report_dir=str(tmp_path / "r")))
    assert opts.expectations == {"queue_limit": None, "buffer_depth": None}  # system_buffer: its older name


@pytest.mark.subprocess
def test_the_session_refuses_before_opening_anything(tmp_path):
    """End to end: pytest scenarios/ with a bad value prints one line, exits 2 and leaves no run."""
    for extra in (["--expect", expect_file(tmp_path, [1])], ["--model-param", "dispatch_latency_us=nan"],
                  ["--profile", "fast"]):
        p = run(scenario_cmd(tmp_path / "reports", *extra), tmp_path / "live")
        assert p.returncode == 2, (extra, p.stdout[-1500:])
        assert "Traceback" not in p.stdout + p.stderr and "wfpcap: " in p.stdout + p.stderr
        assert not list((tmp_path / "reports").glob("*/*"))


@pytest.mark.parametrize("args,line", [
    (["model", "--duration", "0", "--rate", "100"], "argument --duration: must be > 0 and at most 86400, got 0"),
    (["model", "--duration", "-1", "--rate", "100"], "argument --duration: must be > 0 and at most 86400, got -1"),
    (["model", "--count", "0"], "argument --count: must be > 0 and at most 10240256, got 0"),
    (["model", "--count", "20000000"], "argument --count: must be > 0 and at most 10240256, got 20000000"),
    (["model", "--rate", "0.001", "--duration", "1"], "--rate x --duration is 0.001 events; a trial needs at least 1"),
    (["model", "--duration", "5"], "--duration applies only with --rate"),
    (["model", "--rate", "inf"], "argument --rate: must be a finite number, got inf"),
    (["model", "--cost-us", "-1"], "argument --cost-us: must be within 0..1000000, got -1"),
    (["model", "--cost-cv", "nan"], "argument --cost-cv: must be a finite number, got nan"),
    (["model", "--rate", "1000000", "--duration", "1000"], "at most 10,240,256"),
    (["model", "--model-param", "queue_limit=0"], "queue_limit must be within 1..100000, got 0"),
    (["report", "/nonexistent"], "/nonexistent is not a run folder"),
    (["compare", "/nonexistent"], "/nonexistent does not exist"),
    (["frobnicate"], "invalid choice"),
])
def test_wfpcap_arguments(args, line, capsys):
    """In-process (the entry point as a process: tests/test_report.py::test_cli_bad_input_is_one_line)."""
    try:
        rc = cli_main(args)
    except SystemExit as exc:  # argparse refuses before main's body
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, (args, err)
    assert err.startswith("wfpcap: ") and err.count("\n") == 1 and line in err, err
