"""The trace file against the kernel's layout and the rules Perfetto's ftrace-text importer applies.

Perfetto (src/trace_processor/importers/systrace/): systrace_trace_parser.cc skips
lines starting with '#'; systrace_line_tokenizer.cc finds the task, pid, CPU,
timestamp and event name with one regex (re-implemented below); systrace_line_parser.cc
splits the arguments on spaces and '=' and reads sched_switch's fields, takes the work
function of workqueue_execute_start after "function ", and hands tracing_mark_write
payloads to systrace_parser.h's ParseSystraceTracePoint() (B|tgid|name, E|tgid,
C|tgid|name|value); TaskState(const char*) (types/task_state.cc) decodes prev_state.
"""

from __future__ import annotations

import re

from tracekit import count


# systrace_line_tokenizer.cc (current Perfetto): std::regex_search with
#   -(\d+)\s+\(?\s*(\d+|-+)?\)?\s?\[(\d+)\]\s*[a-zA-Z0-9.]{0,5}\s*(\d+\.\d+):\s+(\S+):
PERFETTO_LINE = re.compile(r"-(\d+)\s+\(?\s*(\d+|-+)?\)?\s?\[(\d+)\]\s*[a-zA-Z0-9.]{0,5}\s*(\d+\.\d+):\s+(\S+):")
STATE_CHARS = set("SDTtXZPxKWNI|")


def perfetto_tokenize(line: str) -> dict[str, object]:
    m = PERFETTO_LINE.search(line)
    assert m, f"Perfetto: 'Not a known systrace event format' for {line!r}"
    return {"task": line[:m.start()].strip(), "pid": int(m[1]), "cpu": int(m[3]),
            "ts": int(float(m[4]) * 1e9), "event": m[5], "args": line[m.end():].strip()}


def perfetto_args(args: str) -> dict[str, str]:
    """systrace_line_parser.cc: split on ' ', then each token on '=' (no '=': key "name")."""
    out: dict[str, str] = {}
    for tok in (t for t in args.split(" ") if t):
        if "=" not in tok:
            out["name"] = tok
            continue
        parts = [p for p in tok.split("=") if p]
        key = parts[0] if parts else ""
        out[key] = parts[1] if len(parts) > 1 else ""
    return out


def task_state_ok(s: str) -> bool:
    """types/task_state.cc TaskState(const char*): "R", "R+" or flag letters."""
    if not s:
        return False
    if s[0] == "R":
        return s in ("R", "R+")
    return all(c in STATE_CHARS for c in s)


def systrace_point(payload: str) -> tuple[str, int, str, float | None]:
    """systrace_parser.h ParseSystraceTracePoint(); asserts kSuccess."""
    assert payload and payload[0] in "BECSF", payload
    ph = payload[0]
    assert len(payload) > 1 or ph == "E", payload
    assert payload[1] == "|", payload
    rest = payload[2:]
    tgid_s, _, rest = rest.partition("|")
    assert tgid_s.isdigit(), payload
    tgid = int(tgid_s)
    if ph == "B":
        assert rest, payload
        return ph, tgid, rest, None
    if ph == "E":
        return ph, tgid, "", None
    name, bar, value = rest.partition("|")
    assert bar and value, payload
    return ph, tgid, name, float(value.split("|")[0])


def test_header_is_the_kernels(tiny_trace):
    result, _, head, lines = tiny_trace
    assert head[0] == "# tracer: nop"
    assert head[1] == "#"
    assert head[2] == f"# entries-in-buffer/entries-written: {len(lines)}/{len(lines)}   #P:{result.cpus}"
    assert head[3] == "#"
    assert head[4:] == [
        "#                                _-----=> irqs-off/BH-disabled",
        "#                               / _----=> need-resched",
        "#                              | / _---=> hardirq/softirq",
        "#                              || / _--=> preempt-depth",
        "#                              ||| / _-=> migrate-disable",
        "#                              |||| /     delay",
        "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
        "#              | |         |   |||||     |         |",
    ]
    # Perfetto's systrace importer skips exactly these: they all start with '#'.
    assert all(h.startswith("#") for h in head)


def test_every_line_tokenizes_like_perfetto(tiny_trace):
    _, _, _, lines = tiny_trace
    assert len(lines) > 100
    for ln in lines:
        tok = perfetto_tokenize(ln.raw)
        assert tok["task"] == ln.comm
        assert tok["pid"] == ln.pid
        assert tok["cpu"] == ln.cpu
        assert tok["event"] == ln.event
        assert tok["ts"] // 1000 == ln.ts_us or abs(int(tok["ts"]) - ln.ts_ns) < 1000


def test_sched_switch_has_what_perfetto_needs(tiny_trace):
    _, _, _, lines = tiny_trace
    switches = [ln for ln in lines if ln.event == "sched_switch"]
    assert switches
    for ln in switches:
        assert " ==> " in ln.args
        for f in ("prev_comm=", "prev_pid=", "prev_prio=", "prev_state=", "next_comm=", "next_pid=", "next_prio="):
            assert f in ln.args, (f, ln.raw)
        a = perfetto_args(perfetto_tokenize(ln.raw)["args"])  # type: ignore[arg-type]
        for f in ("prev_pid", "prev_prio", "next_pid", "next_prio"):
            int(a[f])
        assert task_state_ok(a["prev_state"]), ln.raw
        assert a["prev_comm"] and a["next_comm"]
        # the line is written by prev, on its CPU
        assert int(a["prev_pid"]) == ln.pid
        assert (ln.comm == "<idle>") == (a["prev_pid"] == "0")


def test_sched_switch_chains_per_cpu_and_every_line_is_from_the_running_task(tiny_trace):
    """Each CPU's switches chain (prev = last next), and every other event is written
    by the task the switches say runs there (as trace_print_context() prints current)."""
    _, _, _, lines = tiny_trace
    running: dict[int, int] = {}
    for ln in lines:
        if ln.event == "sched_switch":
            a = ln.kv()
            if ln.cpu in running:
                assert running[ln.cpu] == int(a["prev_pid"]), ln.raw
            running[ln.cpu] = int(a["next_pid"])
        elif ln.cpu in running:
            assert running[ln.cpu] == ln.pid, ln.raw


def test_markers_parse_as_systrace_points(tiny_trace):
    result, tracer, _, lines = tiny_trace
    marks = [ln for ln in lines if ln.event == "tracing_mark_write"]
    assert marks
    counters: set[str] = set()
    for ln in marks:
        ph, tgid, name, value = systrace_point(perfetto_tokenize(ln.raw)["args"])  # type: ignore[arg-type]
        if ph == "C":
            assert tgid == tracer.machine.test.threads[0].pid
            counters.add(name)
            assert value is not None and value >= 0
        else:
            assert tgid == ln.pid  # a thread slice on the writer's own track
    expected = {"free_pages", "wmark_min", "wmark_low", "wmark_high", "free_pcp"}
    expected |= {f"kvfree_cache_cpu{i}" for i in range(result.cpus)}
    expected |= {f"kvfree_count_cpu{i}" for i in range(result.cpus)}
    assert counters == expected


def test_slices_nest_per_thread(tiny_trace):
    """workqueue_execute_start/_end and B/E markers form one properly nested stack per
    thread, as Perfetto's slice tracker needs; fill_page_cache_func has both."""
    result, _, _, lines = tiny_trace
    stacks: dict[int, list[str]] = {}
    names: list[str] = []
    for ln in lines:
        st = stacks.setdefault(ln.pid, [])
        if ln.event == "workqueue_execute_start":
            func = perfetto_tokenize(ln.raw)["args"].split("function ")[1]  # type: ignore[union-attr]
            st.append("wq:" + func)
        elif ln.event == "workqueue_execute_end":
            assert st and st[-1].startswith("wq:"), ln.raw
            assert st.pop() == "wq:" + ln.args.split("function ")[1]
        elif ln.event == "tracing_mark_write" and ln.args[0] in "BE":
            ph, _, name, _ = systrace_point(ln.args)
            if ph == "B":
                st.append("B:" + name)
                names.append(name)
            else:
                assert st and st[-1].startswith("B:"), ln.raw
                st.pop()
        if st and st[-1] == "B:fill_page_cache_func" and ln.event == "tracing_mark_write" and ln.args[0] == "B":
            assert len(st) >= 2 and st[-2] == "wq:fill_page_cache_func"
    # the run stops when rcuscale's last thread is done: a work item may still be running;
    # only a machine that panicked may leave a task in direct reclaim
    open_reclaim = ["B:direct_reclaim"] if result.outcome != "completed" else None
    assert all(not st or st[0].startswith("wq:") or st == open_reclaim for st in stacks.values()), stacks
    assert "fill_page_cache_func" in names and "direct_reclaim" in names


def test_timestamps_never_go_back(tiny_trace):
    _, _, _, lines = tiny_trace
    ts = [ln.ts_us for ln in lines]
    assert ts == sorted(ts)


def test_fields_follow_the_tp_printk_formats(tiny_trace):
    _, _, _, lines = tiny_trace
    fmts = {
        "sched_wakeup": r"comm=\S+ pid=\d+ prio=\d+ target_cpu=\d{3}",
        "hrtimer_start": r"hrtimer=[0-9a-f]{16} function=\w+ expires=\d+ softexpires=\d+ mode=REL was_armed=[01]",
        "hrtimer_cancel": r"hrtimer=[0-9a-f]{16}",
        "hrtimer_expire_entry": r"hrtimer=[0-9a-f]{16} function=\w+ now=\d+",
        "workqueue_queue_work": r"work struct=[0-9a-f]{16} function=\w+ workqueue=\w+ req_cpu=\d+ cpu=-?\d+",
        "workqueue_execute_start": r"work struct [0-9a-f]{16}: function \w+",
        "workqueue_execute_end": r"work struct [0-9a-f]{16}: function \w+",
        "mm_shrink_slab_start": (r"\w+\+0x0/0x[0-9a-f]+ [0-9a-f]{16}: nid: 0 objects to shrink -?\d+ gfp_flags [\w|]+ "
                                 r"cache items \d+ delta \d+ total_scan \d+ priority \d+"),
        "mm_shrink_slab_end": (r"\w+\+0x0/0x[0-9a-f]+ [0-9a-f]{16}: nid: 0 unused scan count -?\d+ new scan count "
                               r"-?\d+ total_scan -?\d+ last shrinker return val -?\d+"),
        "mm_vmscan_direct_reclaim_begin": r"order=\d+ gfp_flags=[\w|]+",
        "mm_vmscan_direct_reclaim_end": r"nr_reclaimed=\d+",
        "mm_vmscan_kswapd_wake": r"nid=0 order=\d+",
        "mm_page_alloc": r"page=[0-9a-f]{16} pfn=0x[0-9a-f]+ order=0 migratetype=0 gfp_flags=[\w|]+",
        "mm_page_free": r"page=[0-9a-f]{16} pfn=0x[0-9a-f]+ order=0",
        "rcu_grace_period": r"rcu_preempt \d+ (start|end)",
        "rcu_invoke_kfree_bulk_callback": r"rcu_preempt bulk=0x[0-9a-f]{16} nr_records=\d+",
        "console": r"\[ *\d+\.\d{6}\] .*",
        "tracing_mark_write": r"[BEC]\|\d+(\|[\w]+)?(\|\d+)?",
        "sched_switch": (r"prev_comm=\S+ prev_pid=\d+ prev_prio=\d+ prev_state=[RSDIX]\+? ==> "
                         r"next_comm=\S+ next_pid=\d+ next_prio=\d+"),
    }
    seen = set()
    for ln in lines:
        assert ln.event in fmts, ln.raw
        assert re.fullmatch(fmts[ln.event], ln.args), ln.raw
        seen.add(ln.event)
    # the tiny run exercises every event but the OOM killer's
    assert seen == set(fmts)
    assert count(lines, "mm_page_alloc", "gfp_flags=GFP_KERNEL|__GFP_NOWARN") > 0
