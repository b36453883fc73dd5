"""What a figure counts: the clock it was read from, and the unit that follows.

Every figure is read off a clock of the target in its nanoseconds (pyperf's
perf_counter, the module's ktime_get_ns, bpf's bpf_ktime_get_ns), and the
raw files and cell fields keep those readings as they came (`total_ns`,
`sum_ns`, `worker_means_ns`).  What one of those nanoseconds is depends on
the clock:

    wall    a real clock: a nanosecond is a nanosecond                -> ns
    icount  QEMU -icount shift=0: the guest's clock advances 1 ns per
            executed guest instruction, so a "nanosecond" is an
            instruction (repeatable, not a time, not a cycle count)  -> instructions

A later clock (a cycle counter) adds one line to CLOCKS, e.g. "cycles":
"cycles".  Readers take the unit from here, never from a name: metric names
(per_call, overhead, regs_gain) carry no unit, and every result row and
exported row carries its unit and clock.
"""

CLOCKS = {"wall": "ns", "icount": "instructions"}
# Units of figures counted rather than read off a clock (the pmu method's
# series, analysis/methods/pmu.py): cycles, instructions, and their ratio.
# A ratio is a per-call figure only: its overhead and regs gain (differences
# of ratios) are not computed.
RATIO_UNITS = ("instructions/cycle",)


def clock_of(facts):
    """'icount' when the lab ran under -icount (facts['lab']['icount'] is
    True), else 'wall'."""
    lab = (facts or {}).get("lab") or {}
    return "icount" if lab.get("icount") is True else "wall"


def unit_of_clock(clock):
    return CLOCKS[clock]


def unit_of(facts):
    """The unit of every figure measured with these facts."""
    return unit_of_clock(clock_of(facts))


def bundle_clock(data):
    """A bundle's clock: the recorded one, or the one its facts imply."""
    return data.get("clock") or clock_of(data.get("facts"))


def bundle_unit(data):
    return unit_of_clock(bundle_clock(data))
