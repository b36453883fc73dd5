"""tracefs on the target: find it, check nobody uses it, snapshot, restore.

Runs on the target's own python3 (>= 3.9), stdlib only.

Every knob we may write is snapshotted before the first write and restored
from that snapshot: on success, on error, on a signal, when the lease lapses.
The snapshot is also written to a file so that a fresh process can restore it
(``python3 agent.py --restore STATE``).
"""
import errno
import json
import os

try:  # on the target: shipped next to agent.py as the package `protocol`
    from protocol.errors import BenchError
    from protocol.tracefs_text import (  # noqa: F401
        buffer_size, enabled_view, filter_entries, kernel_expanded, same_state)
except ImportError:  # in the source tree, imported as remote.agent.tracefs
    from remote.protocol.errors import BenchError
    from remote.protocol.tracefs_text import (  # noqa: F401
        buffer_size, enabled_view, filter_entries, kernel_expanded, same_state)

MOUNTPOINTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

# The knobs a run may write, in the order they are restored (tracer last so
# that it goes back to its original value only once its filters are back).
KNOBS = (
    "tracing_on",
    "buffer_size_kb",
    "set_ftrace_pid",
    "set_ftrace_notrace",
    "set_ftrace_filter",
    "current_tracer",
)


class TracefsError(BenchError):
    kind = "tracefs"


def _mounted_at(path):
    # /proc/mounts: 'tracefs /sys/kernel/tracing tracefs rw,nosuid,... 0 0'
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[1] == path and fields[2] in ("tracefs", "debugfs"):
                return True
    return False


def lockdown_state():
    """The bracketed word of /sys/kernel/security/lockdown, or None if unknown.

    'none [integrity] confidentiality' -> 'integrity'.  securityfs is mounted
    for the read and unmounted again if we mounted it.
    """
    path = "/sys/kernel/security/lockdown"
    mounted_here = False
    if not os.path.exists(path) and os.path.isdir("/sys/kernel/security"):
        if os.system("mount -t securityfs securityfs /sys/kernel/security 2>/dev/null") == 0:
            mounted_here = True
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    finally:
        if mounted_here:
            os.system("umount /sys/kernel/security 2>/dev/null")
    for word in text.split():
        if word.startswith("["):
            return word.strip("[]")
    return None


class Tracefs:
    def __init__(self, root, mounted_by_us=False):
        self.root = root
        self.mounted_by_us = mounted_by_us
        self.snapshot = None

    # -- discovery ------------------------------------------------------------
    @classmethod
    def find(cls, mount=True):
        for path in MOUNTPOINTS:
            if os.path.exists(os.path.join(path, "current_tracer")):
                return cls(path)
        if mount and os.path.isdir(MOUNTPOINTS[0]):
            rc = os.system("mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null")
            if rc == 0 and os.path.exists("/sys/kernel/tracing/current_tracer"):
                return cls(MOUNTPOINTS[0], mounted_by_us=True)
        raise TracefsError(
            "tracefs not found at /sys/kernel/tracing or /sys/kernel/debug/tracing and could not be "
            "mounted; the kernel needs CONFIG_FTRACE (and root)", kind="unsupported")

    def path(self, name):
        return os.path.join(self.root, name)

    def exists(self, name):
        return os.path.exists(self.path(name))

    # -- raw access -------------------------------------------------------------
    def read(self, name):
        try:
            with open(self.path(name)) as f:
                return f.read()
        except OSError as e:
            raise self._refused("read", name, e)

    def write(self, name, value, truncate=True):
        """Write value with one write(2); truncate=True opens with O_TRUNC,
        which for set_ftrace_filter and friends clears the list first."""
        flags = os.O_WRONLY | (os.O_TRUNC if truncate else os.O_APPEND)
        try:
            fd = os.open(self.path(name), flags)
            try:
                if value:
                    os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as e:
            raise self._refused("write %r to" % value, name, e)

    def _refused(self, what, name, e):
        reason = os.strerror(e.errno) if e.errno else str(e)
        msg = "the kernel refused to %s %s: %s" % (what, self.path(name), reason)
        if e.errno in (errno.EPERM, errno.EACCES):
            lock = lockdown_state()
            if lock and lock != "none":
                msg += " (kernel lockdown is %r: it forbids function tracing)" % lock
            elif os.geteuid() != 0:
                msg += " (not running as root)"
            return TracefsError(msg, kind="refused")
        if e.errno == errno.EBUSY:
            return TracefsError(msg + " (busy: another tracer user holds it)", kind="busy")
        if e.errno == errno.EINVAL:
            return TracefsError(msg, kind="invalid")
        return TracefsError(msg)

    def events_per_cpu(self):
        """{cpu: events written} from per_cpu/cpuN/stats: entries still in
        the ring buffer plus those overwritten (overrun), and dropped ones
        apart; the tracer keeps one buffer per CPU, so a workload's events
        are on the CPU it ran on, and only their sum over CPUs is the whole."""
        out = {}
        base = self.path("per_cpu")
        try:
            names = sorted(n for n in os.listdir(base) if n.startswith("cpu"))
        except OSError:
            return out
        for name in names:
            try:
                with open(os.path.join(base, name, "stats")) as f:
                    stats = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
                out[int(name[3:])] = {"written": int(stats["entries"]) + int(stats["overrun"]),
                                      "dropped": int(stats.get("dropped events", 0))}
            except (OSError, KeyError, ValueError):
                continue
        return out

    # -- state ------------------------------------------------------------------
    def lines(self, name):
        out = []
        for line in self.read(name).splitlines():
            line = line.strip()
            # 'set_ftrace_filter' prints '#### all functions enabled ####' when empty
            if line and not line.startswith("#"):
                out.append(line)
        return out

    def busy_reasons(self):
        """Why tracefs looks in use by someone else (empty list: it is free)."""
        reasons = []
        tracer = self.read("current_tracer").strip()
        if tracer != "nop":
            reasons.append("current_tracer is %r" % tracer)
        enabled = self.lines("enabled_functions") if self.exists("enabled_functions") else []
        if enabled:
            reasons.append("enabled_functions lists %d function(s), e.g. %r" % (len(enabled), enabled[0]))
        if self.exists("set_event"):
            events = self.lines("set_event")
            if events:
                reasons.append("set_event has %d event(s) enabled, e.g. %r" % (len(events), events[0]))
        return reasons

    def take_snapshot(self):
        snap = {"root": self.root, "mounted_by_us": self.mounted_by_us, "knobs": {}}
        for knob in KNOBS:
            if self.exists(knob):
                snap["knobs"][knob] = self.read(knob)
        self.snapshot = snap
        return snap

    def save_snapshot(self, path):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.snapshot, f)
        os.replace(tmp, path)

    def restore(self):
        """Put every knob back as snapshotted.  Returns a list of problems
        (knobs that read back differently); tries every knob even if one fails."""
        if self.snapshot is None:
            return []
        problems = []
        knobs = self.snapshot["knobs"]
        # Detach first: the tracer goes to nop before its filters change.
        try:
            self.write("current_tracer", "nop")
        except TracefsError as e:
            problems.append(str(e))
        for knob in KNOBS:
            if knob not in knobs:
                continue
            try:
                self._restore_knob(knob, knobs[knob])
            except TracefsError as e:
                problems.append(str(e))
        for knob, before in knobs.items():
            try:
                after = self.read(knob)
            except TracefsError as e:
                problems.append(str(e))
                continue
            if not same_state(knob, before, after):
                problems.append("%s is %r, was %r" % (knob, after.strip(), before.strip()))
        return problems

    def _restore_knob(self, knob, before):
        if knob in ("set_ftrace_filter", "set_ftrace_notrace"):
            # One entry per write: the kernel accepts a list, but an entry it
            # rejects would then drop the rest.  The first write truncates.
            self.write(knob, "")
            for line in filter_entries(before):
                self.write(knob, line + "\n", truncate=False)
        elif knob == "set_ftrace_pid":
            self.write(knob, "")
            pids = [l for l in before.split() if l.isdigit()]  # 'no pid' when empty
            for pid in pids:
                self.write(knob, pid + "\n", truncate=False)
        elif knob == "buffer_size_kb":
            # Only a size someone set is put back.  An unexpanded buffer
            # ('7 (expanded: 1408)') was expanded by the kernel itself on
            # first tracer use; writing 1408 now would not undo that, and
            # writing 7 would leave the next user a 7 KiB buffer.
            if "expanded" not in before and self.read(knob).strip() != before.strip():
                self.write(knob, before.strip())
        else:
            self.write(knob, before.strip())


def restore_from_file(path):
    with open(path) as f:
        snap = json.load(f)
    t = Tracefs(snap["root"], snap.get("mounted_by_us", False))
    t.snapshot = snap
    problems = t.restore()
    return t, problems
