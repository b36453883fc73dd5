"""pmu: the CPU's own counters, cycles and retired instructions per call.

Design.  The counters count one thread, user and kernel (the syscall's
kernel work and whatever tracing adds to it), never the hypervisor, through
perf_event_open from the agent in the standard library (ctypes: no `perf`
binary on the target).  Cycles lead a group and instructions join it, so
both cover exactly the same time; each read gives time_enabled and
time_running too.

- The getppid workload, in every mode: the workers self-count around each
  timed value (remote/agent/pmumethod.py: a manager process starts
  `processes` fresh workers, so that getppid() returns a pid above the pid
  floor; each calibrates its loop to min_time and keeps, per value, calls,
  cycles, instructions, time_enabled, time_running and perf_counter_ns of
  the same loop).  Self-counting keeps the counters on exactly the loop,
  without attaching to another process or counting its start.
- The kernel method's cells, when pmu is planned too: the module's timing
  loop runs in the agent thread that writes its `run` file, so a group
  opened on that thread (pid 0) and read around each repetition sees it
  (kernelmethod.py asks for it with pmu=True; the counts are extra fields
  of each run in the kernel method's raw file, and analysis/methods/kernel.py
  reads them with series() below).

Figures: a cell gives one series per thing it counts (Method.series), each
with its unit: `pmu` (the clock's ns per call of the same loops, like every
method's), `pmu/cycles` (cycles), `pmu/instructions` (instructions, where
the PMU counts them; plain QEMU TCG does not) and `pmu/ipc`
(instructions/cycle, per call only); the kernel method's counters give
`kernel/cycles`, `kernel/instructions`, `kernel/ipc`.  Overheads and the
regs gain follow for each series with CIs over rounds, as for every figure.

Multiplexing: a value or repetition whose time_running is less than its
time_enabled was not counted the whole time (the kernel rotated the group
off the PMU); the cell is refused (Multiplexed), never scaled up.
"""
import json
import time

from remote.protocol.errors import BenchError

from . import Method, answer
from .bpf import PROBE_MODE

# Event source names of CPU PMUs (/sys/bus/event_source/devices): x86's
# core PMU, Arm's (armv8_pmuv3_0, armv8_cortex_a72, ...), Apple's cores
# under Asahi (apple_firestorm_pmu, ...).
CPU_PMU_PREFIXES = ("cpu", "armv8", "armv7", "apple_")
RATIO_UNIT = "instructions/cycle"
COUNTERS = (("cycles", "cycles"), ("instructions", "instructions"))

# Which AWS sizes give the guest a PMU: AWS's Graviton Performance Runbook
# (aws/aws-graviton-getting-started, perfrunbook/debug_hw_perf.md), as
# docs/hardware.md's table has it: whole-socket sizes every event, the
# smaller sizes of Graviton2 and later a basic set, older generations'
# smaller sizes maybe none.
NO_PMU = ("no CPU PMU is exposed to this machine (event sources: {sources}; perf_event_open(cycles): "
          "{err}): a virtual machine whose hypervisor does not pass a PMU through, or a kernel "
          "without the PMU's driver.  On AWS (its Graviton performance runbook) Graviton2 and later "
          "(*6g, *7g, *8g, *9g) give every size a basic set of events and the whole-socket sizes "
          "(16xlarge for *6g and *7g, 24xlarge for *8g, 48xlarge for *9g) and .metal all of them, "
          "while the smaller sizes of older generations may give none: on those, a whole-socket or "
          ".metal size; on a Graviton2 or later of any size, a kernel with CONFIG_ARM_PMU and "
          "CONFIG_HW_PERF_EVENTS.  Under QEMU boot with -cpu max (TCG) or -cpu host (KVM), without "
          "pmu=off; on a board, that kernel with the PMU in its device tree or ACPI")
# perf_event_open's EACCES/EPERM for root: perf_event_paranoid does not
# apply to a root with CAP_PERFMON or CAP_SYS_ADMIN (perfmon_capable()), so
# something else refused.  A plain counting event is not subject to lockdown
# (only PERF_SAMPLE_REGS_INTR is), nor does a hypervisor answer EACCES (no
# PMU is ENOENT): what is left is a security module's hook
# (security_perf_event_open: SELinux's perf_event class, AppArmor), a
# seccomp filter, or a root whose capabilities are not the initial user
# namespace's (a container), for which the paranoid level does apply.
ROOT_REFUSED = ("perf_event_open refused ({err}) for root: not kernel.perf_event_paranoid ({paranoid}), "
                "which does not limit a root with CAP_PERFMON or CAP_SYS_ADMIN, nor lockdown, which "
                "does not refuse plain counting; something else refused: a security module's policy "
                "(SELinux's perf_event class, AppArmor: see the audit log), a seccomp filter (a "
                "container runtime's default profile refuses perf_event_open), or a container whose "
                "root lacks those capabilities on the host (there the paranoid level applies).  Allow "
                "perf_event_open in that policy or profile, or run on the host itself")
NO_INSTRUCTIONS = ("the instructions event is not supported here (perf_event_open: {err}; plain QEMU "
                   "TCG counts cycles only, boot the lab with icount for instructions): the pmu method "
                   "counts cycles only")


class Multiplexed(BenchError):
    """Counters that did not run the whole time: refused, never scaled."""
    kind = "measure"


def is_cpu_pmu(name):
    return name.startswith(CPU_PMU_PREFIXES) and name not in ("cpu_idle",)


def usable(probe):
    """From the agent's probe (remote/agent/pmumethod.py: probe()): bench
    check's answer, its value the events that count ('cycles,instructions'
    or 'cycles'), its reason saying what to change when it is not."""
    if not probe:
        return answer(False, None, "the agent did not probe the PMU")
    events = probe.get("events") or {}
    cycles, instructions = events.get("cycles"), events.get("instructions")
    sources = probe.get("event_sources")
    pmus = [s for s in (sources or []) if is_cpu_pmu(s)]
    paranoid, euid = probe.get("paranoid"), probe.get("euid")
    if cycles == "ok":
        who = "root" if euid == 0 else f"uid {euid}"
        base = (f"{', '.join(pmus) or 'a CPU PMU'}: perf_event_open counts user and kernel for this "
                f"thread ({who}, kernel.perf_event_paranoid={paranoid})")
        if instructions == "ok":
            return answer(True, "cycles,instructions", base + ": cycles and instructions")
        return answer(True, "cycles", base + ": cycles; " + NO_INSTRUCTIONS.format(err=instructions))
    if cycles == "ENOSYS":
        return answer(False, None, f"perf_event_open is not available on {probe.get('machine')} (ENOSYS: "
                                   "a kernel without CONFIG_PERF_EVENTS, or an architecture the agent "
                                   "does not know the syscall number of)")
    if cycles in ("EACCES", "EPERM") and euid == 0:
        return answer(False, None, ROOT_REFUSED.format(err=cycles, paranoid=paranoid))
    if cycles in ("EACCES", "EPERM"):
        return answer(False, None, f"perf_event_open refused ({cycles}) with kernel.perf_event_paranoid="
                                   f"{paranoid} for uid {euid}: counting kernel work needs root "
                                   "(CAP_PERFMON) or kernel.perf_event_paranoid <= 1; run as root, as "
                                   "bench does, or `sysctl kernel.perf_event_paranoid=1`")
    if not pmus:
        return answer(False, None, NO_PMU.format(sources=", ".join(sources) if sources else "none",
                                                 err=cycles))
    return answer(False, None, f"the PMU ({', '.join(pmus)}) does not count CPU cycles for a thread "
                               f"here (perf_event_open(cycles): {cycles})")


def check_counted(items, what):
    """Refuse values or repetitions whose counters were multiplexed."""
    bad = [i for i, v in enumerate(items) if v.get("time_running") != v.get("time_enabled")]
    if bad:
        v = items[bad[0]]
        raise Multiplexed(f"{what}: the counters ran {v.get('time_running')} of {v.get('time_enabled')} ns "
                          f"enabled in {len(bad)} of {len(items)} values (multiplexed with other events): "
                          "refused, not scaled",
                          hint="stop other perf users on the target (perf, profilers, the NMI watchdog: "
                               "sysctl kernel.nmi_watchdog=0), then bench run --resume the bundle")


def counter_series(prefix, groups):
    """[(label, unit, per-group means per call)] for each counted event and
    IPC; groups: lists of values/repetitions (a worker's values, or one
    kernel repetition each), each with calls and the counts."""
    out = []
    counted = [name for name, _ in COUNTERS if groups and all(name in v for g in groups for v in g)]
    for name, unit in COUNTERS:
        if name in counted:
            out.append((f"{prefix}/{name}", unit,
                        [sum(v[name] for v in g) / sum(v["calls"] for v in g) for g in groups]))
    if "cycles" in counted and "instructions" in counted:
        out.append((f"{prefix}/ipc", RATIO_UNIT,
                    [sum(v["instructions"] for v in g) / sum(v["cycles"] for v in g) for g in groups]))
    return out


class Pmu(Method):
    name = "pmu"
    rank = 3
    needs = "a CPU PMU exposed to the kernel (perf_event_open; no perf binary)"
    samples = "workers"

    def applies(self, mode, tracefs_mode):
        return mode != PROBE_MODE  # (the bpf probes' cost is pyperf's)

    def available(self, facts, caps, module):
        return usable(caps.get("pmu"))

    def estimate(self, profile, startup_s):
        # a manager and `processes` workers; each worker calibrates (about
        # twice min_time: doubling), then warmups + values of min_time.
        p = profile
        return (p.processes + 1) * startup_s + p.processes * (p.warmups + p.values + 2) * p.min_time

    def work(self, profile):
        p = profile
        return p.processes + 1, p.processes * (p.warmups + p.values + 2) * p.min_time

    def start(self, client, run):
        """What a worker's group counts here; a PMU gone since bench check
        loses the method, with the reason; no instructions is said."""
        probe = client.request("pmu_start", timeout=120)
        run.bundle.data["pmu"] = probe
        a = usable(probe)
        if not a["ok"]:
            run.drop_method(self.name, a["reason"])
            return
        if a["value"] == "cycles":
            note = "pmu: " + NO_INSTRUCTIONS.format(err=probe["events"].get("instructions"))
            run.bundle.data["notes"].append(note)
            run.ui.warn(note)
        run.ui.step(f"pmu counts {a['value'].replace(',', ' and ')} (user and kernel) per call")
        run.bundle.save()

    def measure(self, client, run, cell, quiet):
        tmode = run.tracefs_mode(cell.mode)
        before = client.request("set_mode", mode=tmode, function=run.function, timeout=120)
        run.check_mode(tmode, run.function, before)
        p = run.plan.profile
        t0 = time.monotonic()
        m = client.request("pmu_measure", processes=p.processes, warmups=p.warmups, values=p.values,
                           min_time=p.min_time, timeout=3600, **quiet)
        host_s = time.monotonic() - t0
        after = client.request("verify", function=run.function, timeout=60)
        run.check_mode(tmode, run.function, after)
        run.check_workload_pid(m.get("workload_pid"))
        raw = client.fetch(m["file"])
        data = json.loads(raw)
        check_counted([v for w in data["workers"] for v in w["values"]], f"pmu cell {cell.id}")
        rel = run.bundle.write_raw(self.raw_file(cell.id), raw)
        return dict(file=rel, elapsed_s=round(m["elapsed_s"], 2), workload_pid=m.get("workload_pid"),
                    counters=data["workers"][0]["counters"], tracefs={"before": before, "after": after},
                    **({"cpus": m["cpus"]} if m.get("cpus") else {}), host_s=host_s)

    @staticmethod
    def _workers(path):
        with open(path) as f:
            workers = json.load(f)["workers"]
        check_counted([v for w in workers for v in w["values"]], str(path))
        return workers

    def read(self, path):
        """Per worker, the clock's ns per call over its values (total ns /
        total calls), and how many values; a multiplexed cell is refused."""
        workers = self._workers(path)
        means = [sum(v["ns"] for v in w["values"]) / sum(v["calls"] for v in w["values"])
                 for w in workers]
        return means, sum(len(w["values"]) for w in workers)

    def series(self, path, unit):
        workers = self._workers(path)
        return [(self.name, unit, self.read(path)[0])] + counter_series(self.name, [w["values"] for w in workers])


METHOD = Pmu()
