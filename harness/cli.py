"""`wfpcap`: render, compare and what-if from the command line. Bad input: one line, exit 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.analysis.loss import loss_by_sequence
from harness.files import write_atomic
from harness.inputs import BadInput, finite_float, one_line, parse_pairs, percentage, positive, within
from harness.platforms.model import ModelParams, ModelPlatform
from harness.judge import baseline, compare, history
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
from harness.traffic.plan import max_packets

# one what-if trial: each packet has its own remote tuple (traffic/plan.py)
MAX_EVENTS = max_packets(TrialSpec(TrafficSpec(count=1), SubscriberSpec()))


def _params(pairs: list[str]) -> ModelParams:
    return ModelParams.from_overrides(parse_pairs("--model-param", pairs))


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report.render import render  # plotting loads in seconds: only the commands that draw wait for it
    run = Path(args.run)
    if not run.is_dir():
        raise ValueError(f"{run} is not a run folder")
    print(render(run)["html"])
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.report import fleet
    threshold = baseline.DEFAULT_THRESHOLD_PCT if args.fail_if_worse is None else args.fail_if_worse
    found = compare.collect([Path(p) for p in args.paths], args.reference, threshold)
    text = fleet.markdown(found)
    if args.out:
        write_atomic(args.out, text)
    if args.html:
        fleet.write_html(found, Path(args.html))
    print(text, end="")
    if args.fail_if_worse is not None and found.regressions():
        print("\n".join(f"wfpcap: {line}" for line in fleet.regression_lines(found)), file=sys.stderr)
        return 1
    return 0


def cmd_baseline_save(args: argparse.Namespace) -> int:
    saved = baseline.save(Path(args.source), Path(args.out), args.last)
    print(f"baseline {args.out}: {saved.config_id}, run {', '.join(saved.runs)}, {len(saved.readings)} estimates")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from harness.report import history_page
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise BadInput(f"history: --out {args.out} is a file; history writes history.html, history.md and its "
                       "plots into a folder")
    built = history.build(Path(args.config))
    paths = history_page.write(built, Path(args.out) if args.out else None)
    print("\n".join(history_page.summary_lines(built)))
    print(f"history: {paths['html']}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Can this machine measure WFP net events? Exit 1 naming the first failing check."""
    from harness.platforms.wfp.doctor import diagnose, diagnose_native
    lines = (diagnose_native if args.native else diagnose)(args.library).lines()
    print("\n".join(lines))
    if args.out:
        write_atomic(args.out, "\n".join(lines) + "\n")
    return 0 if lines[-1].startswith("doctor: all") else 1


def cmd_model(args: argparse.Namespace) -> int:
    """What-if on the model: one held burst, or one sustained trial at a rate."""
    if args.rate is None and args.duration is not None:
        raise BadInput("model: --duration applies only with --rate (a sustained trial); a burst has --count")
    duration = 10.0 if args.duration is None else args.duration
    if args.rate is not None and args.rate * duration < 1:
        raise BadInput(f"model: --rate x --duration is {args.rate * duration:g} events; a trial needs at least 1")
    platform = ModelPlatform(_params(args.model_param))
    sub = SubscriberSpec(cost_us=args.cost_us, cost_cv=args.cost_cv, hold=args.rate is None, mode=args.mode)
    if args.rate is None:
        spec = TrialSpec(TrafficSpec(count=args.count), sub)
    else:
        if args.rate * duration > MAX_EVENTS:
            raise BadInput(f"model: --rate x --duration is {args.rate * duration:,.0f} events; at most {MAX_EVENTS:,}")
        spec = TrialSpec(TrafficSpec(count=int(args.rate * duration), pacing="constant", rate_per_s=args.rate), sub)
    result = platform.run_trial(spec)
    loss = loss_by_sequence(result.sent, result.delivered)
    kind = f"held burst of {args.count}" if args.rate is None else f"{args.rate:g}/s for {duration:g} s"
    print(f"{kind}: delivered {loss.delivered}, lost {loss.lost} ({loss.ratio:.2%}; head {loss.lost_head}, "
          f"middle {loss.lost_middle}, tail {loss.lost_tail})"
          + (f", first loss after {loss.onset_s:.3f} s" if loss.onset_s is not None else ""))
    print(f"model true burst capacity: {platform.params.true_burst_capacity()}")
    return 0


def cmd_twin(args: argparse.Namespace) -> int:
    """Fit the model to a run, check it on the held-out trials, write twin.json in the run folder."""
    from harness.results.store import write_twin
    from harness.twin.calibrate import calibrate
    from harness.report.twin_section import terminal_lines
    run = Path(args.run)
    if not (run / "summary.json").is_file():
        raise BadInput(f"{run} is not a run folder (no summary.json)")
    twin = calibrate(run)
    path = write_twin(run, twin)
    print("\n".join(terminal_lines(twin)))
    print(f"twin: {path}")
    return 0


def _shape(text: str):
    """--traffic-shape on-off:MEAN,BURST,LENGTH,DURATION or ramp:START,END,DURATION (rates /s, times s)."""
    from harness.traffic.shapes import on_off, ramp
    kind, _, values = text.partition(":")
    shapes = {"on-off": (on_off, 4, "on-off:MEAN_RATE,BURST_RATE,BURST_S,DURATION_S"),
              "ramp": (ramp, 3, "ramp:START_RATE,END_RATE,DURATION_S")}
    if kind not in shapes:
        raise BadInput(f"--traffic-shape must be on-off:... or ramp:..., got {text!r}")
    make, count, form = shapes[kind]
    fields = values.split(",")
    try:
        numbers = [finite_float(f) for f in fields]
    except ValueError:
        numbers = []
    if len(numbers) != count:
        raise BadInput(f"--traffic-shape {kind} needs {form}, got {text!r}")
    return make(*numbers)


def _traces(args: argparse.Namespace) -> list[str]:
    return [x for x in (args.traffic_capture, args.traffic_netevents, args.traffic_shape) if x]


def _check_predict(args: argparse.Namespace) -> None:
    """The options' combinations, before the twin is read (or fitted)."""
    traces = _traces(args)
    if len(traces) + (args.rate is not None) + (args.count is not None) != 1:
        raise BadInput("give one traffic: --rate, --count, --traffic-capture, --traffic-netevents or --traffic-shape")
    if not traces and (args.traffic_scale != 1.0 or args.trace_window):
        raise BadInput("--traffic-scale and --trace-window apply to a trace (capture, netevents or shape)")
    if args.hold and args.count is None:
        raise BadInput("--hold goes with --count (a held back-to-back burst)")
    if args.subscriber_cost and (args.cost_us is not None or args.cost_cv):
        raise BadInput("--subscriber-cost replaces --cost-us and --cost-cv: give one or the other")


def _predict_traffic(args: argparse.Namespace, platform: str) -> tuple[TrafficSpec, str]:
    """The traffic of a what-if and its description: a trace (capture, netsh record, shape) at a
    scale, a constant rate, or a back-to-back burst. A trace's events follow the layer unless
    --trace-events says otherwise: nflog logs every packet; WFP's default filter is at an ALE
    layer, where a flow's first packet makes the event."""
    from harness.spec import FilterSpec
    from harness.traffic.schedule import check_trace_events, default_trace_events
    from harness.traffic.window import apply_window
    traces = _traces(args)
    layer_rule = "packets" if platform == "nflog" else default_trace_events(FilterSpec().layer)
    events = check_trace_events(args.trace_events) if args.trace_events else layer_rule
    if traces:
        if args.traffic_capture:
            from harness.traffic.capture import read_capture
            schedule = read_capture(args.traffic_capture, events)
        elif args.traffic_netevents:
            from harness.traffic.netevents_xml import read_netevents
            schedule = read_netevents(args.traffic_netevents, events)
        else:
            schedule = _shape(args.traffic_shape).with_trace_events(events)
        if args.trace_window:
            schedule = apply_window(schedule, args.trace_window)
        schedule = schedule.scaled(args.traffic_scale)
        return TrafficSpec.replay(schedule), (f"{schedule.provenance.source} at {args.traffic_scale:g}x "
                                              f"({schedule.count:,} packets, {schedule.event_count:,} events: one per "
                                              f"{events[:-1]}, {schedule.duration_s:.4g} s)")
    if args.count is not None:
        return TrafficSpec(count=args.count), f"a back-to-back burst of {args.count:,} at the sender's rate"
    count = args.rate * args.duration
    if count > MAX_EVENTS:
        raise BadInput(f"--rate x --duration is {count:,.0f} events; at most {MAX_EVENTS:,}")
    return (TrafficSpec(count=max(1, int(count)), pacing="constant", rate_per_s=args.rate),
            f"{args.rate:,.6g}/s for {args.duration:g} s")


def _predict_subscriber(args: argparse.Namespace) -> tuple[SubscriberSpec, str]:
    if args.subscriber_cost:
        from harness.subscriber_cost import read_cost_file
        dist = read_cost_file(args.subscriber_cost)
        return (SubscriberSpec(cost_distribution=dist, mode=args.mode, hold=args.hold),
                f"costs drawn from {args.subscriber_cost} (mean {dist.mean_us:.4g} us, p99 {dist.quantile_us(0.99):.4g} us), {args.mode}")
    cost = args.cost_us or 0.0
    cv = f" (cv {args.cost_cv:g})" if args.cost_cv else ""
    return (SubscriberSpec(cost_us=cost, cost_cv=args.cost_cv, mode=args.mode, hold=args.hold),
            f"{cost:g} us per event{cv}, {args.mode}" + (", held through the burst" if args.hold else ""))


def cmd_predict(args: argparse.Namespace) -> int:
    """What-if on a run's twin, in virtual time."""
    from harness.twin.whatif import answer, twin_of
    run = Path(args.run)
    _check_predict(args)
    subscriber, subscriber_text = _predict_subscriber(args)
    twin, params = twin_of(run)
    traffic, traffic_text = _predict_traffic(args, twin.platform)
    spec = TrialSpec(traffic, subscriber)
    print("\n".join(answer(run, twin, params, spec, traffic_text, subscriber_text, args.headroom)))
    return 0


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line and exit status 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"wfpcap: {self.prog.removeprefix('wfpcap').strip() + ': ' if self.prog != 'wfpcap' else ''}"
                     f"{message}\n")


def _typed(convert):
    """An argparse type whose refusal reads as our one line ('argument --count: must be ...')."""
    def wrapped(text: str):
        try:
            return convert(text)
        except BadInput as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value ")) from None
    wrapped.__name__ = convert.__name__
    return wrapped


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="wfpcap", description="WFP net-event capacity harness. "
                                "Measurements run as `pytest scenarios/`; this command renders, compares and asks the model.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="render a stored run folder again (plots, report.html, report.md)")
    r.add_argument("run")
    r.set_defaults(func=cmd_report)
    c = sub.add_parser("compare", help="lay configurations side by side (config folders, run folders or reports/)")
    c.add_argument("paths", nargs="+")
    c.add_argument("--out", help="also write the Markdown to this file (e.g. a CI job summary)")
    c.add_argument("--html", help="write the fleet page (self-contained HTML) to this file")
    c.add_argument("--reference", help="configuration the others are compared with (label C1.. or config id; "
                                        "default: the first)")
    c.add_argument("--fail-if-worse", type=_typed(percentage), default=None, metavar="PCT",
                   help="exit 1 if a configuration is worse than the reference by more than PCT percent "
                        "(outside the measured spread); without it, differences are judged at "
                        f"{baseline.DEFAULT_THRESHOLD_PCT:g} %% and only shown")
    c.set_defaults(func=cmd_compare)
    b = sub.add_parser("baseline", help="baselines for the regression gate")
    bsub = b.add_subparsers(dest="action", required=True)
    bs = bsub.add_parser("save", help="write a small baseline JSON from a run or a configuration folder")
    bs.add_argument("source", help="a complete run folder, or a configuration folder (its latest complete run)")
    bs.add_argument("--out", required=True, help="the JSON file to write (check it in)")
    bs.add_argument("--last", type=_typed(positive("int", 10_000)), default=1,
                    help="combine the last N complete runs of a configuration folder (median, union of spreads)")
    bs.set_defaults(func=cmd_baseline_save)
    h = sub.add_parser("history", help="one configuration over time: trends, spreads and step changes")
    h.add_argument("config", help="a configuration folder, reports/<config-id>/")
    h.add_argument("--out", help="folder for history.html, history.md and the plots (default: the config folder)")
    h.set_defaults(func=cmd_history)
    d = sub.add_parser("doctor", help="can this machine measure WFP net events? one line per check")
    d.add_argument("--library", default=None, help="fwpuclnt to load (default: the system's, or WFPCAP_FWPUCLNT)")
    d.add_argument("--out", default=None, help="also write the lines to this file (the CI diagnostics bundle)")
    d.add_argument("--native", action="store_true",
                   help="only the native callback's check: compiled, and entered once from a thread the OS starts")
    d.set_defaults(func=cmd_doctor)
    m = sub.add_parser("model", help="what-if on the dispatcher model")
    m.add_argument("--model-param", action="append", default=[], metavar="NAME=VALUE")
    m.add_argument("--count", type=_typed(positive("int", MAX_EVENTS)), default=20_000,
                   help="burst size (held subscriber)")
    m.add_argument("--rate", type=_typed(positive("float", 1e9)), default=None,
                   help="sustained rate instead of a burst (events/s)")
    m.add_argument("--duration", type=_typed(positive("float", 86_400.0)), default=None,
                   help="sustained trial length (s)")
    m.add_argument("--cost-us", type=_typed(within("float", 0.0, 1e6)), default=5.0)
    m.add_argument("--cost-cv", type=_typed(within("float", 0.0, 5.0)), default=0.0)
    m.add_argument("--mode", choices=("inline", "copy"), default="inline")
    m.set_defaults(func=cmd_model)
    t = sub.add_parser("twin", help="fit the model to a run and check it on trials the fit did not see (twin.json)")
    t.add_argument("run", help="a run folder, reports/<config-id>/<timestamp>/")
    t.set_defaults(func=cmd_twin)
    w = sub.add_parser("predict", help="what-if on a run's twin, in virtual time: a rate, a burst, a trace; headroom")
    w.add_argument("run", help="a run folder (its twin.json, fitted first if it has none)")
    w.add_argument("--rate", type=_typed(positive("float", 1e9)), default=None, help="constant rate (events/s)")
    w.add_argument("--duration", type=_typed(positive("float", 86_400.0)), default=10.0, help="with --rate (s)")
    w.add_argument("--count", type=_typed(positive("int", MAX_EVENTS)), default=None,
                   help="a back-to-back burst of this many packets at the sender's fitted rate")
    w.add_argument("--hold", action="store_true", help="with --count: hold the subscriber through the burst")
    w.add_argument("--traffic-capture", metavar="FILE", help="a pcap or pcapng capture as the trace")
    w.add_argument("--traffic-netevents", metavar="FILE", help="netsh wfp show netevents' XML as the trace")
    w.add_argument("--traffic-shape", metavar="SHAPE",
                   help="on-off:MEAN_RATE,BURST_RATE,BURST_S,DURATION_S or ramp:START_RATE,END_RATE,DURATION_S")
    w.add_argument("--trace-events", choices=("packets", "flows"), default=None,
                   help="events per packet (transport layers) or per flow (ALE layers); default packets")
    w.add_argument("--trace-window", metavar="auto:LENGTH|START:LENGTH", default=None)
    w.add_argument("--traffic-scale", type=_typed(positive("float", 1e6)), default=1.0,
                   help="play the trace this many times as fast")
    w.add_argument("--cost-us", type=_typed(within("float", 0.0, 1e6)), default=None, help="work per event (us)")
    w.add_argument("--cost-cv", type=_typed(within("float", 0.0, 5.0)), default=0.0)
    w.add_argument("--subscriber-cost", metavar="FILE", help="the subscriber's measured costs (us): samples or bin,count")
    w.add_argument("--mode", choices=("inline", "copy"), default="inline")
    w.add_argument("--headroom", action="store_true",
                   help="also search the first time scale at which the traffic loses events")
    w.set_defaults(func=cmd_predict)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"wfpcap: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wfpcap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
