"""The agent's inputs (--traffic-*, --trace-*, --subscriber*, --agent agent.toml): each bad one is
refused in one line before anything opens, and `pytest scenarios/` then exits 2 with no run left."""
from __future__ import annotations

import sys

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP

from captures import ether, write_pcap
from harness.agent import load_agent
from harness.inputs import BadInput
from harness.plugin.options import run_options
from session_runs import run, scenario_cmd
from test_inputs import Options
from test_trace_readers import EVENTS, netevents_xml


def pcap(tmp_path, name="trace.pcap", frames=None):
    frames = frames or [bytes(ether() / IP(dst="10.0.0.9") / UDP(sport=5000 + k % 3, dport=53)) for k in range(30)]
    return str(write_pcap(tmp_path / name, frames, [k * 1_000_000 for k in range(len(frames))]))


def files(tmp_path) -> dict[str, str]:
    """Good and bad inputs, written to the formats the readers document."""
    d = tmp_path
    (d / "costs.txt").write_text("12\n15\n40\n")
    (d / "negative.txt").write_text("cost_us\n12\n-3\n")
    (d / "no-costs.txt").write_text("# nothing measured\n")
    (d / "empty.pcap").write_bytes(b"")
    (d / "netevents.xml").write_text(netevents_xml(EVENTS))
    (d / "no-events.xml").write_text('<?xml version="1.0"?><netEvents numItems="0"></netEvents>')
    (d / "mysub.py").write_text("def handle(data):\n    pass\n")
    return {"pcap": pcap(d), "v6": pcap(d, "v6.pcap", [bytes(ether() / IPv6() / UDP()), bytes(ether() / ARP())]),
            "nopackets": str(write_pcap(d / "none.pcap", [], [])), "empty": str(d / "empty.pcap"),
            "costs": str(d / "costs.txt"), "negative": str(d / "negative.txt"), "nocosts": str(d / "no-costs.txt"),
            "xml": str(d / "netevents.xml"), "noxml": str(d / "no-events.xml"), "missing": str(d / "missing.pcap"),
            "dir": str(d)}


# (options, the line the user sees): the list (missing file, empty trace, negative cost, no
# IPv4 packet, scale <= 0, a bad window) for each reader, and the agent's own combinations
ROWS = [
    ({"traffic_capture": "{missing}"}, "cannot read capture .*missing.pcap: No such file or directory"),
    ({"traffic_capture": "{empty}"}, "capture .*empty.pcap is empty \\(an empty trace\\)"),
    ({"traffic_capture": "{nopackets}"}, "capture .*none.pcap holds no packets \\(an empty trace\\)"),
    ({"traffic_capture": "{v6}"}, "holds no IPv4 packet \\(2 packets: 2 not IPv4\\)"),
    ({"traffic_netevents": "{dir}/missing.xml"}, "cannot read net-event file .*missing.xml: No such file"),
    ({"traffic_netevents": "{noxml}"}, "holds no net events \\(an empty trace\\)"),
    ({"traffic_netevents": "{pcap}"}, "net-event file .*trace.pcap is not well-formed XML"),
    ({"traffic_capture": "{pcap}", "traffic_scale": "0"}, "--traffic-scale must be a finite number > 0, got '0'"),
    ({"traffic_capture": "{pcap}", "traffic_scale": "-2"}, "--traffic-scale must be a finite number > 0, got '-2'"),
    ({"traffic_netevents": "{xml}", "traffic_scale": "nan"}, "--traffic-scale must be a finite number > 0, got 'nan'"),
    ({"traffic_capture": "{pcap}", "trace_window": "5"}, "--trace-window must be auto:LENGTH or START:LENGTH"),
    ({"traffic_capture": "{pcap}", "trace_window": "auto:0"}, "the length must be > 0 s"),
    ({"traffic_capture": "{pcap}", "trace_window": "100:1"}, "--trace-window 100:1 lies outside the trace"),
    ({"traffic_capture": "{pcap}", "trace_events": "bytes"}, "--trace-events must be one of packets, flows"),
    ({"traffic_shape": "on-off:mean=5000,burst=1000,length=0.1,duration=2"}, "must not exceed the burst rate"),
    ({"traffic_shape": "ramp:start=1,end=2"}, "--traffic-shape ramp: duration missing"),
    ({"traffic_shape": "square:hz=5"}, "--traffic-shape must be on-off:"),
    ({"traffic_shape": "ramp:start=-1,end=5,duration=1"}, "ramp start rate must be a finite number > 0"),
    ({"traffic_capture": "{pcap}", "traffic_netevents": "{xml}"}, "needs exactly one of .*given: capture, netevents"),
    ({"subscriber_cost": "{costs}"}, "needs exactly one of .*given: none"),
    ({"traffic_capture": "{pcap}", "subscriber_cost": "{dir}/nope.csv"}, "cannot read cost file .*nope.csv"),
    ({"traffic_capture": "{pcap}", "subscriber_cost": "{negative}"}, "cost file .*negative.txt line 3: cost -3 us is negative"),
    ({"traffic_capture": "{pcap}", "subscriber_cost": "{nocosts}"}, "holds no costs \\(an empty distribution\\)"),
    ({"traffic_capture": "{pcap}", "subscriber": "nosuchmodule_xyz:f"}, "--subscriber nosuchmodule_xyz:f: cannot import"),
    ({"traffic_capture": "{pcap}", "subscriber": "mysub:nothere"}, "mysub has no function nothere"),
    ({"traffic_capture": "{pcap}", "subscriber": "handle"}, "--subscriber must be MODULE:FUNCTION"),
    ({"traffic_capture": "{pcap}", "subscriber": "mysub:handle", "subscriber_cost": "{costs}"}, "are two subscribers"),
    ({"traffic_capture": "{pcap}", "subscriber_mode": "lazy"}, "--subscriber-mode must be inline or copy"),
    ({"traffic_capture": "{pcap}", "subscriber_lib": "{dir}/missing.so:f"}, "cannot read --subscriber-lib library"),
    ({"traffic_capture": "{pcap}", "subscriber_lib": "{costs}:f"}, "does not load as a shared library"),
    ({"traffic_capture": "{pcap}", "subscriber_lib": "LIBC:no_such_symbol_xyz"}, "exports no symbol no_such_symbol_xyz"),
    ({"traffic_capture": "{pcap}", "subscriber_lib": "LIBC:abs"}, "runs in the wfp platform's native callback.*measures model"),
    ({"traffic_capture": "{pcap}", "required_headroom": "0"}, "the required headroom must be > 0"),
    ({"traffic_capture": "{pcap}", "required_headroom": "lots"}, "the required headroom must be a number"),
]


def libc() -> str:
    import ctypes.util
    name = ctypes.util.find_library("c")
    for candidate in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"):
        if name and __import__("os").path.exists(candidate):
            return candidate
    pytest.skip("no libc file to load as a stand-in library")


@pytest.mark.parametrize("given,line", ROWS, ids=[str(i) for i in range(len(ROWS))])
def test_agent_inputs_are_refused_with_one_line(tmp_path, monkeypatch, given, line):
    made = files(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    options = {k: (v.replace("LIBC", libc()) if "LIBC" in v else v).format(**made) for k, v in given.items()}
    with pytest.raises(BadInput, match=line) as exc:
        run_options(Options(report_dir=str(tmp_path / "reports"), **options))
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


AGENT_ROWS = [
    ("[traffic]\ncapture = 'trace.pcap'\n[subscriber]\nbudget = 3\n", "unknown key in agent file .*: subscriber.budget"),
    ("[traffic]\ncapture = 'trace.pcap'\n[alerts]\nx = 1\n", "unknown section in agent file .*: \\[alerts\\]"),
    ("[traffic]\ncapture = 'trace.pcap'\nscale = 0\n", "--traffic-scale must be a finite number > 0"),
    ("[traffic]\ncapture = 'missing.pcap'\n", "cannot read capture .*missing.pcap"),
    ("[traffic\ncapture = 'trace.pcap'\n", "is not valid TOML"),
    ("[traffic]\ncapture = 'trace.pcap'\n[headroom]\nrequired = -1\n", "the required headroom must be > 0"),
    ("[traffic]\ncapture = 'trace.pcap'\nlayer = 'FORWARD'\n", "traffic.layer must be one of"),
    ("[traffic]\ncapture = 'trace.pcap'\n[headroom]\nresolution = 2\n", "headroom.resolution must be within"),
    ("[traffic]\ncapture = 'trace.pcap'\n[subscriber]\nseed = -4\n", "subscriber.seed must be a whole number"),
]


@pytest.mark.parametrize("text,line", AGENT_ROWS, ids=[str(i) for i in range(len(AGENT_ROWS))])
def test_agent_files_are_refused_with_one_line(tmp_path, text, line):
    files(tmp_path)
    (tmp_path / "agent.toml").write_text(text)
    with pytest.raises(BadInput, match=line) as exc:
        run_options(Options(report_dir=str(tmp_path / "reports"), agent=str(tmp_path / "agent.toml")))
    assert "\n" not in str(exc.value)
    missing = tmp_path / "nothere.toml"
    with pytest.raises(BadInput, match="cannot read agent file .*nothere.toml"):
        run_options(Options(report_dir=str(tmp_path / "reports"), agent=str(missing)))


def test_an_agent_file_with_options_over_it(tmp_path):
    """Paths are the file's folder's; an option given beside the file wins; the layer decides
    which packets make events unless told; a Python subscriber runs in copy mode unless told, and
    the report will say why."""
    made = files(tmp_path)
    (tmp_path / "agent.toml").write_text(
        "[traffic]\ncapture = 'trace.pcap'\nwindow = 'auto:0.01'\nscale = 2\n[subscriber]\ncost = 'costs.txt'\n"
        "seed = 5\n[headroom]\nrequired = 1.5\nresolution = 0.05\n")
    opts = run_options(Options(report_dir=str(tmp_path / "r"), agent=str(tmp_path / "agent.toml")))
    agent = opts.agent
    assert agent.trace.scale == 2 and agent.trace.trace_events == "flows"  # ALE_AUTH_CONNECT_V4: a flow's first
    assert agent.trace.count == 10 and agent.source.count == 30  # 10 ms of 30 packets 1 ms apart
    assert agent.subscriber.cost_distribution.seed == 5 and agent.required == 1.5 and agent.resolution == 0.05
    assert agent.spec().traffic.schedule == agent.trace and agent.spec(3.0).traffic.schedule.scale == 3.0
    over = run_options(Options(report_dir=str(tmp_path / "r"), agent=str(tmp_path / "agent.toml"), traffic_scale="0.5",
                               trace_events="packets", required_headroom="3"))
    assert over.agent.trace.scale == 0.5 and over.agent.trace.trace_events == "packets" and over.agent.required == 3
    sys.path.insert(0, str(tmp_path))
    try:
        agent = load_agent({"--traffic-netevents": made["xml"], "--subscriber": "mysub:handle"}, None)
    finally:
        sys.path.remove(str(tmp_path))
    assert agent.subscriber.mode == "copy" and agent.subscriber.function == "mysub:handle"
    assert any("Python callback itself costs" in n for n in agent.notes)
    assert load_agent({}, None) is None  # nothing given: no agent, the agent scenario skips
    # a function's module beside the agent file is found without touching sys.path
    folder = tmp_path / "agent-folder"
    folder.mkdir()
    (folder / "beside_the_agent_file.py").write_text("def on_event(data):\n    pass\n")
    (folder / "agent.toml").write_text(f"[traffic]\ncapture = '{made['pcap']}'\n"
                                       "[subscriber]\nfunction = 'beside_the_agent_file:on_event'\n")
    assert load_agent({}, str(folder / "agent.toml")).subscriber.function == "beside_the_agent_file:on_event"


@pytest.mark.subprocess
def test_the_session_refuses_a_bad_agent_before_opening_anything(tmp_path):
    """End to end: one line, exit 2, no run folder; a --resume beside an agent option is refused too."""
    made = files(tmp_path)
    for extra in (["--traffic-capture", made["v6"]], ["--traffic-capture", made["pcap"], "--traffic-scale", "0"],
                  ["--traffic-capture", made["pcap"], "--subscriber-cost", made["negative"]]):
        p = run(scenario_cmd(tmp_path / "reports", *extra), tmp_path / "live")
        out = p.stdout + p.stderr
        assert p.returncode == 2, (extra, out[-1500:])
        assert "Traceback" not in out and "wfpcap: " in out
        assert not list((tmp_path / "reports").glob("*/*"))
