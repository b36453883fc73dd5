"""The measured workload: a tight getppid loop in a pyperf worker.

Started by the agent as ``python3 workload.py [pyperf options]``; pyperf
re-executes this file for each worker process.  The vendored pyperf lives
next to this file, so the directory goes first on sys.path (pyperf does not
pass PYTHONPATH to its workers unless told to).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pyperf  # noqa: E402

# Calls per loop iteration, unrolled so that the interpreter's loop overhead
# is paid once per INNER calls.  pyperf divides by loops * INNER, so a value
# is the time of one getppid() call (plus its share of the loop).
INNER = 20


def getppid_loop(loops):
    g = os.getppid
    it = range(loops)
    t0 = pyperf.perf_counter()
    for _ in it:
        g(); g(); g(); g(); g(); g(); g(); g(); g(); g()  # noqa: E702
        g(); g(); g(); g(); g(); g(); g(); g(); g(); g()  # noqa: E702
    return pyperf.perf_counter() - t0


def main():
    runner = pyperf.Runner()
    runner.metadata["workload"] = "getppid"
    runner.metadata["inner_loops_unrolled"] = INNER
    runner.bench_time_func("getppid", getppid_loop, inner_loops=INNER)


if __name__ == "__main__":
    main()
