"""`wfpcap`: render, compare and what-if from the command line. Bad input: one line, exit 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.analysis.loss import loss_by_sequence
from harness.platforms.model import ModelParams, ModelPlatform
from harness.report.compare import collect, compare_markdown
from harness.report.render import render
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec


def _params(pairs: list[str]) -> ModelParams:
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--model-param needs NAME=VALUE, got {pair!r}")
        overrides[name.strip()] = value.strip()
    return ModelParams.from_overrides(overrides)


def cmd_report(args: argparse.Namespace) -> int:
    run = Path(args.run)
    if not (run / "summary.json").exists():
        raise ValueError(f"{run} is not a run folder (no summary.json)")
    print(render(run)["html"])
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    text = compare_markdown(collect([Path(p) for p in args.paths]))
    if args.out:
        Path(args.out).write_text(text)
    print(text, end="")
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    """What-if on the model: one held burst, or one sustained trial at a rate."""
    platform = ModelPlatform(_params(args.model_param))
    sub = SubscriberSpec(cost_us=args.cost_us, cost_cv=args.cost_cv, hold=args.rate is None, mode=args.mode)
    if args.rate is None:
        spec = TrialSpec(TrafficSpec(count=args.count), sub)
    else:
        spec = TrialSpec(TrafficSpec(count=max(1, int(args.rate * args.duration)), pacing="constant",
                                     rate_per_s=args.rate), sub)
    result = platform.run_trial(spec)
    loss = loss_by_sequence(result.sent, result.delivered)
    kind = f"held burst of {args.count}" if args.rate is None else f"{args.rate:g}/s for {args.duration:g} s"
    print(f"{kind}: delivered {loss.delivered}, lost {loss.lost} ({loss.ratio:.2%}; head {loss.lost_head}, "
          f"middle {loss.lost_middle}, tail {loss.lost_tail})"
          + (f", first loss after {loss.onset_s:.3f} s" if loss.onset_s is not None else ""))
    print(f"model true burst capacity: {platform.params.true_burst_capacity()}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wfpcap", description="WFP net-event capacity harness. "
                                "Measurements run as `pytest scenarios/`; this command renders, compares and asks the model.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="render a stored run folder again (plots, report.html, report.md)")
    r.add_argument("run")
    r.set_defaults(func=cmd_report)
    c = sub.add_parser("compare", help="lay configurations side by side (config folders, run folders or reports/)")
    c.add_argument("paths", nargs="+")
    c.add_argument("--out", help="also write the table to this file")
    c.set_defaults(func=cmd_compare)
    m = sub.add_parser("model", help="what-if on the dispatcher model")
    m.add_argument("--model-param", action="append", default=[], metavar="NAME=VALUE")
    m.add_argument("--count", type=int, default=20_000, help="burst size (held subscriber)")
    m.add_argument("--rate", type=float, default=None, help="sustained rate instead of a burst (events/s)")
    m.add_argument("--duration", type=float, default=10.0, help="sustained trial length (s)")
    m.add_argument("--cost-us", type=float, default=5.0)
    m.add_argument("--cost-cv", type=float, default=0.0)
    m.add_argument("--mode", choices=("inline", "copy"), default="inline")
    m.set_defaults(func=cmd_model)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"wfpcap: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wfpcap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
