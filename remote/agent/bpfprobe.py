"""The bpf method's collector: kernel time of each getppid call, aggregated in the kernel.

Runs on the target as root under an interpreter that can ``import bcc`` (the
distribution's binding: python3-bpfcc on Debian/Ubuntu, python3-bcc on
Amazon Linux/Fedora; PyPI's 'bcc' is an unrelated package), which may not be
the agent's interpreter: hence a separate process, stdlib + bcc only.

It compiles its program once and then, per measured run, attaches the two
raw_syscalls tracepoints, filtered in the kernel on one process (tgid, set
through a map; 0 = every process) and on one syscall number, and detaches
again: between runs the probes cost nothing, so pyperf cells are not
measured with them.  Tracepoints rather than kprobes: raw_syscalls fire on
every syscall in every ftrace mode alike, so their cost cancels in the
differences between modes.

Protocol, one JSON object per line:
  start:   {"event": "ready", "bcc": VERSION, "compile_s": S, "linear": {...}}
           or {"event": "error", "error": "..."} and exit 1
  stdin {"op": "attach", "tgid": N}  -> {"ok": true}   (maps cleared, probes on)
  stdin {"op": "collect"}            -> {"ok": true, "result": {count, sum_ns,
                                        mean_ns, log2, linear, missed_start}}
                                        (probes off)
  EOF on stdin: detach and exit (the agent is gone).
"""
import argparse
import json
import sys
import time

# Named placeholders, filled in by program() (a hidden --print flag shows the result).
PROGRAM = r"""
BPF_ARRAY(target, u32, 1);            /* the tgid to watch, 0 = every process */
BPF_HASH(start, u32, u64, 10240);     /* tid -> sys_enter timestamp */
BPF_ARRAY(totals, u64, 3);            /* 0 count, 1 sum ns, 2 exits without an enter */
BPF_HISTOGRAM(hist_log2, int, 64);
BPF_HISTOGRAM(hist_linear, int, LIN_SLOTS);

static inline int watched(void)
{
    int zero = 0;
    u32 *want = target.lookup(&zero);
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    return want && (*want == 0 || *want == tgid);
}

TRACEPOINT_PROBE(raw_syscalls, sys_enter)
{
    if (args->id != SYSCALL_NR || !watched())
        return 0;
    u32 tid = bpf_get_current_pid_tgid();
    u64 ts = bpf_ktime_get_ns();
    start.update(&tid, &ts);
    return 0;
}

TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
    if (args->id != SYSCALL_NR || !watched())
        return 0;
    u32 tid = bpf_get_current_pid_tgid();
    u64 *ts = start.lookup(&tid);
    if (!ts) {
        int k = 2;
        u64 *missed = totals.lookup(&k);
        if (missed)
            __sync_fetch_and_add(missed, 1);
        return 0;
    }
    u64 delta = bpf_ktime_get_ns() - *ts;
    start.delete(&tid);
    int k0 = 0, k1 = 1;
    u64 *count = totals.lookup(&k0);
    u64 *sum = totals.lookup(&k1);
    if (count)
        __sync_fetch_and_add(count, 1);
    if (sum)
        __sync_fetch_and_add(sum, delta);
    hist_log2.increment(bpf_log2l(delta));
    /* slot 0: below LIN_LO; slot LIN_SLOTS-1: at or above the top */
    int slot = 0;
    if (delta >= LIN_LO) {
        u64 i = (delta - LIN_LO) / LIN_STEP + 1;
        slot = i >= LIN_SLOTS - 1 ? LIN_SLOTS - 1 : i;
    }
    hist_linear.increment(slot);
    return 0;
}
"""


def program(nr, lin_lo, lin_step, lin_buckets):
    text = PROGRAM
    for name, value in (("SYSCALL_NR", nr), ("LIN_LO", lin_lo), ("LIN_STEP", lin_step),
                        ("LIN_SLOTS", lin_buckets + 2)):
        text = text.replace(name, str(int(value)))
    return text


def send(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


TRACEPOINTS = (("raw_syscalls:sys_enter", "tracepoint__raw_syscalls__sys_enter"),
               ("raw_syscalls:sys_exit", "tracepoint__raw_syscalls__sys_exit"))


class Collector:
    def __init__(self, bpf, lin):
        self.b = bpf
        self.lin = lin
        self.attached = False

    def detach(self):
        if self.attached:
            for tp, _ in TRACEPOINTS:
                self.b.detach_tracepoint(tp=tp)
            self.attached = False

    def attach(self, tgid):
        self.detach()
        for name in ("start", "totals", "hist_log2", "hist_linear"):
            self.b[name].clear()
        t = self.b["target"]
        t[t.Key(0)] = t.Leaf(int(tgid))
        for tp, fn in TRACEPOINTS:
            self.b.attach_tracepoint(tp=tp, fn_name=fn)
        self.attached = True

    def collect(self):
        self.detach()
        totals = {k.value: v.value for k, v in self.b["totals"].items()}
        count, total = totals.get(0, 0), totals.get(1, 0)
        log2 = {k.value: v.value for k, v in self.b["hist_log2"].items() if v.value}
        linear = {k.value: v.value for k, v in self.b["hist_linear"].items() if v.value}
        return {
            "count": count,
            "sum_ns": total,
            "mean_ns": total / count if count else None,
            "missed_start": totals.get(2, 0),
            # slot s of log2 counts deltas in [2**(s-1), 2**s) ns (bpf_log2l); slot 0 is 0 ns
            "log2": {str(k): log2[k] for k in sorted(log2)},
            # slot 0: below lo; slot i (1..buckets): [lo + (i-1)*step, lo + i*step); slot
            # buckets+1: at or above lo + buckets*step
            "linear": dict(self.lin, counts={str(k): linear[k] for k in sorted(linear)}),
        }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nr", type=int, required=True, help="syscall number to time")
    ap.add_argument("--lin-lo", type=int, default=0)
    ap.add_argument("--lin-step", type=int, default=4)
    ap.add_argument("--lin-buckets", type=int, default=1024)
    ap.add_argument("--print", action="store_true", help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    text = program(ns.nr, ns.lin_lo, ns.lin_step, ns.lin_buckets)
    if ns.print:
        print(text)
        return 0
    lin = {"lo": ns.lin_lo, "step": ns.lin_step, "buckets": ns.lin_buckets}
    t0 = time.monotonic()
    try:
        import bcc
        b = bcc.BPF(text=text)
        # TRACEPOINT_PROBE attaches at load; runs attach on demand.
        for tp, _ in TRACEPOINTS:
            b.detach_tracepoint(tp=tp)
    except Exception as e:  # compile or load failure: say so, in one line
        msg = " ".join(str(e).split())[-400:]
        send({"event": "error", "error": "%s: %s" % (type(e).__name__, msg)})
        return 1
    c = Collector(b, lin)
    send({"event": "ready", "bcc": getattr(bcc, "__version__", None),
          "compile_s": round(time.monotonic() - t0, 2), "linear": lin,
          "python": sys.executable})
    try:
        for raw in iter(sys.stdin.readline, ""):
            req = json.loads(raw)
            try:
                if req.get("op") == "attach":
                    c.attach(req["tgid"])
                    send({"ok": True})
                elif req.get("op") == "collect":
                    send({"ok": True, "result": c.collect()})
                else:
                    send({"ok": False, "error": "unknown op %r" % req.get("op")})
            except Exception as e:
                send({"ok": False, "error": "%s: %s" % (type(e).__name__, e)})
    finally:
        c.detach()
    return 0


if __name__ == "__main__":
    sys.exit(main())
