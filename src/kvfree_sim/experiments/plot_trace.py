"""``kvfree-sim plot-trace FILE --out timeline.png``: a trace drawn as a timeline.

FILE is an ftrace text file, as ``kvfree-sim run --trace FILE`` writes it.  The
picture has one lane per CPU a kfree thread ran on (what ran there: the kfree
thread, kworkers coloured by work function, kswapd, the GP kthread; a red
strip for direct reclaim), then free pages against the watermarks,
kvfree_rcu's cached pages summed over CPUs, and the cumulative shrinker
calls and refill runs (see :mod:`kvfree_sim.trace.plot`).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..config import ConfigError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("plot-trace", help="draw a trace written by 'run --trace' as a per-CPU timeline (PNG)")
    p.add_argument("file", metavar="FILE", help="ftrace text file ('kvfree-sim run --trace FILE')")
    p.add_argument("--out", default="timeline.png", metavar="PNG", help="output image (default timeline.png)")
    p.add_argument("--window", default=None, metavar="START:END",
                   help="draw only this time window, in seconds (either side optional)")
    p.add_argument("--lanes", type=int, default=16, metavar="N",
                   help="at most N CPU lanes: the CPUs kfree threads ran on, else the busiest (default 16)")
    p.add_argument("--title", default=None, help="figure title (default: the trace file's name)")
    p.set_defaults(func=cmd_plot_trace)


def cmd_plot_trace(args: argparse.Namespace) -> int:
    from ..trace.ftrace import parse_window
    from ..trace.plot import plot_timeline, read_trace

    if args.lanes < 1:
        raise ConfigError("--lanes must be at least 1")
    if not args.out.lower().endswith(".png"):
        raise ConfigError(f"--out '{args.out}': plot-trace writes PNG files (name it *.png)")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise ConfigError(f"--out '{args.out}': directory {out_dir} does not exist")
    try:
        window = parse_window(args.window)
    except ConfigError as e:
        raise ConfigError(str(e).replace("--trace-window", "--window")) from None
    tl = read_trace(args.file, window)
    if tl.lines == 0:
        raise ConfigError(f"{args.file}: no trace lines" + (" in the window" if args.window else ""))
    title = args.title or f"kvfree-sim trace: {os.path.basename(args.file)}"
    # Draw into a temporary file and rename: no half-written PNG on failure.
    tmp = f"{args.out}.tmp-{os.getpid()}.png"
    try:
        lanes = plot_timeline(tl, tmp, max_lanes=args.lanes, title=title)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    span = (tl.t_last - (tl.t_first or 0)) / 1e9
    print(f"{args.out}: {len(lanes)} CPU lane(s) {lanes}, {tl.lines} trace lines over {span:.3f} s",
          file=sys.stderr)
    return 0
