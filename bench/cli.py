"""The `bench` command.  Only this module turns exceptions into a one-line
message and an exit code (the table is EXIT_CODES, mirrored in the README)."""
import json
import logging
import os
import pathlib
import shlex
import subprocess
import sys
import time

import click

from remote.protocol.errors import BenchError
from remote.protocol import modes as mode_registry

from . import __version__

# kind -> (exit code, what it means).  The README's error table is this table.
EXIT_CODES = {
    "usage": (2, "bad command-line input"),
    "host-not-found": (3, "unknown host"),
    "connect": (3, "cannot connect"),
    "auth": (3, "authentication refused"),
    "connection-lost": (3, "connection lost"),
    "timeout": (3, "a remote command timed out"),
    "host-key": (4, "host key unknown or changed"),
    "no-root": (5, "no root on the target"),
    "unsupported": (6, "the target cannot do what was asked"),
    "refused": (6, "the kernel refused a tracefs operation"),
    "invalid": (6, "the kernel rejected a tracefs value"),
    "tracefs": (6, "tracefs error"),
    "module-refused": (6, "the kernel refused the suite's module or its request"),
    "module-build": (6, "the suite's module did not build on the target"),
    "busy": (7, "tracing already in use on the target"),
    "module-busy": (7, "a module from an earlier run is loaded and cannot be removed"),
    "output": (8, "cannot write the output"),
    "bundle": (8, "bad or unreadable bundle"),
    "lab": (9, "lab error"),
    "measure": (10, "a measurement failed or was not what it claimed"),
    "agent": (10, "the agent failed"),
    "module": (10, "the suite's module failed"),
    "protocol": (10, "the agent failed"),
    "remote": (10, "remote error"),
    "bench": (1, "error"),
    "target-locked": (7, "another bench run holds the target's lock"),
    "resume-mismatch": (11, "--resume: the host, kernel or plan differs from the bundle's"),
    "hosts": (12, "several hosts: some failed and others did not, or they failed differently"),
    "lava": (13, "the LAVA server refused a request or gave an unreadable answer"),
    "lava-job": (14, "the LAVA job ended Incomplete or Canceled, or did not finish in time"),
}
EXIT_INTERRUPTED = 130
EXIT_BUG = 1


def exit_code(kind):
    return EXIT_CODES.get(kind, (EXIT_BUG, ""))[0]


class BenchGroup(click.Group):
    def invoke(self, ctx):
        debug = ctx.params.get("debug") or os.environ.get("BENCH_DEBUG") == "1"
        try:
            return super().invoke(ctx)
        except BenchError as e:  # every error of the suite, RemoteError too
            if debug:
                raise
            click.echo(f"bench: error: {e}", err=True)
            ctx.exit(exit_code(e.kind))
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("bench: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:  # a bug: say so in one line, traceback only with --debug
            if debug:
                raise
            click.echo(f"bench: internal error: {type(e).__name__}: {e} (run with --debug for the "
                       "traceback, and please report it)", err=True)
            ctx.exit(EXIT_BUG)


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="bench")
def cli(debug):
    """Measure the per-call cost of the Linux function tracer (ftrace_regs_caller,
    ftrace_caller, mcount) on arm64 machines and the QEMU arm64 lab."""
    # paramiko logs failed handshakes with tracebacks; the user gets our one
    # line instead (and everything with --debug).
    log = logging.getLogger("paramiko")
    if debug:
        logging.basicConfig(level=logging.DEBUG)
    else:
        log.addHandler(logging.NullHandler())
        log.propagate = False


# -- run -------------------------------------------------------------------------

@cli.command()
@click.option("--host", "hosts", multiple=True, default=["lab"], show_default=True,
              help="'lab' (the local QEMU arm64 lab), 'local' (this machine, no SSH), or a Host alias "
                   "in ~/.ssh/config.  Repeat it to run the same plan on several hosts at once (see "
                   "above).")
@click.option("--hosts-file", type=click.Path(dir_okay=False), default=None,
              help="More hosts: one name per line, '#' starts a comment (added to --host's).")
@click.option("--profile", default="standard", show_default=True,
              help="Effort: smoke, quick, standard or rigorous.")
@click.option("--modes", default=",".join(mode_registry.MODES), show_default=True,
              help="Comma-separated modes: " + "; ".join(
                  f"{name} ({mode_registry.get(name).description})" for name in mode_registry.MODES)
              + ".  Modes the host cannot do are skipped with the reason.")
@click.option("--methods", default="pyperf,kernel,bpf", show_default=True,
              help="Comma-separated methods: pyperf (user space), kernel (the module's in-kernel "
                   "timing), bpf (the kernel's own sys_enter -> sys_exit time of each getppid call, "
                   "with bcc), pmu (cycles and instructions per call from the CPU's counters; "
                   "not in the default).  Methods the host cannot do are skipped with the reason.")
@click.option("--ops", "ops", multiple=True, metavar="RELEVANT[,IRRELEVANT]",
              help="The kernel method's noregs and regs cells register RELEVANT ops (1-16) on the "
                   "module's tracee and IRRELEVANT (0-16, default 0) on a function never called, "
                   "instead of one ops; repeat for more points (each is a cell per round; off, no "
                   "ops, is their baseline).")
@click.option("--ops-sweep", "ops_sweep", is_flag=False, flag_value="1,2,4,8x0,8", default=None,
              metavar="[RS[xIS]]",
              help="The kernel method at every point of RS relevant ops x IS irrelevant ones "
                   "(default when given alone: 1,2,4,8x0,8, i.e. 1, 2, 4 and 8 relevant ops with 0 "
                   "and with 8 irrelevant); with --ops, the points of both.")
@click.option("--out", type=click.Path(), default=None,
              help="Bundle directory (default: results/<host>/<UTC timestamp>/); with several hosts, "
                   "the directory of their bundles, each in <out>/<host>/.")
@click.option("--force", is_flag=True, help="Measure even if tracing is already in use (it is restored).")
@click.option("--accept-new-host-key", is_flag=True,
              help="Trust an unknown SSH host key once and add it to known_hosts.")
@click.option("--ssh-config", type=click.Path(dir_okay=False), default=None,
              help="ssh_config file to read aliases from (default ~/.ssh/config).")
@click.option("--lease", type=click.FloatRange(5, 3600), default=30.0, show_default=True,
              help="Seconds without word from the controller before the target restores itself "
                   "(while a cell is measured the controller keeps silent: then the lease runs from "
                   "the cell's end, or its declared budget).")
@click.option("--seed", type=int, default=None, help="Seed for the order of modes in each round.")
@click.option("--connect-timeout", type=click.FloatRange(1, 600), default=None,
              help="Seconds to wait for the SSH connection.")
@click.option("--quiet", is_flag=True, help="No progress, only the table.")
@click.option("--tune", is_flag=True,
              help="Pin the measuring processes to one CPU, set its governor to performance, turbo "
                   "off, perf_event_max_sample_rate 1; every setting is restored byte for byte.")
@click.option("--resume", "resume_path", type=click.Path(), default=None,
              help="Measure only the cells missing from this incomplete bundle, into it (same host, "
                   "kernel and plan, or refused).")
@click.pass_context
def run(ctx, hosts, hosts_file, profile, modes, methods, ops, ops_sweep, out, force, accept_new_host_key, ssh_config,
        lease, seed, connect_timeout, quiet, tune, resume_path):
    """Measure per-call cost and tracer overhead on HOST; write a bundle.

    \b
    Several hosts (--host A --host B, --hosts-file FILE) run the same plan at
    the same time, each in a run of its own: one bundle per host, progress
    lines prefixed [HOST], one host's failure or restore stops no other, and
    Ctrl-C stops and restores every host.  A summary says how each host
    ended.  Exit code: 0 when every host succeeded; when every host failed
    with the same code, that code; 130 when interrupted; otherwise 12 (some
    hosts failed: the summary says which)."""
    from analysis import bundle as bundle_mod
    from remote.hosts import open_target

    from .plan import METHODS, ops_points, parse_list, select_profile
    from .run import execute
    from .ui import RunUI, print_results

    mode_list = parse_list(modes, mode_registry.names(), "modes")
    if mode_registry.BASELINE not in mode_list:
        mode_list = [mode_registry.BASELINE] + mode_list
    request = {"profile": select_profile(profile), "modes": mode_list,
               "methods": parse_list(methods, METHODS, "methods"), "seed": seed, "tune": tune,
               "ops": ops_points(ops, ops_sweep)}
    if request["ops"] and not resume_path:
        from .errors import UsageError
        from .plan import takes_points
        if "kernel" not in request["methods"]:
            raise UsageError("--ops and --ops-sweep set the kernel method's ops: it is not in --methods",
                             hint="add kernel to --methods")
        if not any(takes_points(m, "kernel") for m in mode_list):
            raise UsageError("--ops and --ops-sweep need a mode whose kernel cells register ops",
                             hint="add noregs and/or regs to --modes")
    if len(hosts) > 1 or hosts_file:
        return _run_hosts(ctx, hosts, hosts_file, out, resume_path)
    host = hosts[0]
    resume = None
    if resume_path:
        resume, request, host = _resume_request(ctx, resume_path, request, host, out)
        out = str(resume.path)
    out_dir = out or bundle_mod.default_dir("results", host)
    ui = RunUI(quiet=quiet)
    # --out is checked before anything is done on the target.
    created = [] if resume else _prepare_out(out_dir)
    try:
        target = open_target(host, accept_new_host_key=accept_new_host_key, ssh_config=ssh_config,
                             timeout=connect_timeout)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        command = "bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        b = execute(target, request, out_dir, force=force, lease=lease, ui=ui, command=command,
                    resume=resume)
    finally:
        target.close()
    print_results(b)
    click.echo(f"bundle: {b.path}", err=True)


def _run_hosts(ctx, hosts, hosts_file, out, resume_path):
    """Several hosts: each host's run is this command with one --host, in a
    process of its own (bench/multihost.py); the plan options typed here are
    passed on as they were typed."""
    from click.core import ParameterSource

    from . import multihost
    from .errors import UsageError

    if resume_path:
        raise UsageError("--resume takes one bundle, of one host", hint="resume each host's bundle on its own")
    if ctx.get_parameter_source("hosts") != ParameterSource.COMMANDLINE:
        hosts = ()  # --hosts-file alone: not the default 'lab' too
    names = multihost.host_list(hosts, hosts_file)
    dirs = multihost.out_dirs(names, out)
    passed = [(p.name, p.opts[0]) for p in ctx.command.params
              if p.name not in ("hosts", "hosts_file", "out", "resume_path")
              and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE]
    options = multihost.options_of(ctx.params, passed)
    made_out = bool(out) and not pathlib.Path(out).exists()
    env = {"BENCH_DEBUG": "1"} if ctx.find_root().params.get("debug") else {}
    click.echo(f"> {len(names)} hosts at once: {', '.join(names)}", err=True)
    outcomes, interrupted = multihost.run_hosts(
        names, dirs, options, env=env, echo=lambda line: click.echo(line, err=True),
        write_block=lambda host, text: click.echo(f"== {host}\n{text.rstrip()}"))
    click.echo("hosts:")
    for line in multihost.summary_lines(outcomes):
        click.echo(line)
    if made_out:
        _remove_empty([pathlib.Path(out)])  # every host failed before its first cell: no bundle at all
    code = multihost.exit_code([o["code"] for o in outcomes], interrupted, EXIT_INTERRUPTED)
    ctx.exit(code)


def _resume_request(ctx, path, request, host, out):
    """--resume: the bundle, its request, its host.  Plan options typed on the
    command line must agree with the bundle's; --host defaults to its host."""
    from click.core import ParameterSource

    from analysis.bundle import prove_writable

    from . import resume as resume_mod
    from .errors import UsageError

    if out:
        raise UsageError("--out and --resume exclude each other",
                         hint="--resume writes into the bundle it resumes")
    b = resume_mod.load(path)
    typed = {name: request[name] for name in ("profile", "modes", "methods", "seed", "tune")
             if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    if any(ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE for n in ("ops", "ops_sweep")):
        typed["ops"] = request["ops"]
    if "profile" in typed:
        typed["profile"] = typed["profile"].name
    resume_mod.check_request(b, {f"--{k}": v for k, v in typed.items()})
    prove_writable(b.path, "the bundle", hint="free space or make it writable, then resume again")
    if ctx.get_parameter_source("hosts") != ParameterSource.COMMANDLINE:
        host = b.data["host"]["name"]
    return b, resume_mod.request_of(b), host


def _prepare_out(out_dir):
    """Create --out (and its parents) and prove it writable before anything
    happens on the target.  Returns the directories it created."""
    from analysis.bundle import OutputError, prove_writable

    p = pathlib.Path(out_dir)
    if (p / "bundle.json").exists():
        raise OutputError(f"{p} already holds a bundle; results are never overwritten",
                          hint="choose another --out")
    created = []
    probe = p
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    try:
        prove_writable(p, "the bundle")
    except OutputError:
        _remove_empty(created)
        raise
    return created


def _remove_empty(dirs):
    for d in dirs:  # deepest first
        try:
            d.rmdir()
        except OSError:
            pass


# -- check -----------------------------------------------------------------------

@cli.command()
@click.option("--host", default="lab", show_default=True,
              help="'lab', 'local', or a Host alias in ~/.ssh/config.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (stable keys).")
@click.option("--accept-new-host-key", is_flag=True,
              help="Trust an unknown SSH host key once and add it to known_hosts.")
@click.option("--ssh-config", type=click.Path(dir_okay=False), default=None,
              help="ssh_config file to read aliases from (default ~/.ssh/config).")
@click.option("--connect-timeout", type=click.FloatRange(1, 600), default=None,
              help="Seconds to wait for the SSH connection.")
def check(host, as_json, accept_new_host_key, ssh_config, connect_timeout):
    """Say what HOST can do (ftrace era, regs caller, module, bcc, tuning), each with its reason.
    Changes nothing on the host."""
    from remote.hosts import open_target

    from .run import probe
    from .ui import RunUI, print_check

    target = open_target(host, accept_new_host_key=accept_new_host_key, ssh_config=ssh_config,
                         timeout=connect_timeout)
    try:
        facts, report = probe(target, ui=RunUI(quiet=True))
    finally:
        target.close()
    if as_json:
        click.echo(json.dumps(report, indent=1, sort_keys=True))
    else:
        print_check(host, report)


# -- export ----------------------------------------------------------------------

@cli.command()
@click.argument("bundles", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="Output format.")
@click.option("--extra", is_flag=True, help="Add lab accel/icount, bundle path and CI method columns.")
def export(bundles, fmt, extra):
    """Print the results of BUNDLES as a tidy table: one row per
    (host, kernel_release, mode, workload, method, metric), each with its
    unit (ns, or instructions under icount) and clock (wall, icount)."""
    from analysis.load import load_frame

    df = load_frame(bundles, extra=extra)
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    else:
        click.echo(df.to_json(orient="records", indent=1))


# -- report ----------------------------------------------------------------------

@cli.command()
@click.argument("bundles", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for report.md, report.html (self-contained) and figures/; files of an "
                   "earlier report there are replaced.")
@click.option("--anonymize", is_flag=True,
              help="Remove hostnames, addresses, serials and instance IDs from the report.")
@click.option("--pool", is_flag=True,
              help="Pool the bundles (their rounds become replications of one measurement) instead "
                   "of reporting each on its own; refused when host, kernel, variant, lab settings, "
                   "profile or --tune differ, unless grouped by them with --group-by.")
@click.option("--group-by", default="", metavar="KEYS",
              help="With --pool: comma-separated setup keys to pool within (e.g. kernel_release,icount).")
@click.option("--title", default=None, help="Report title (default: names the bundles).")
def report(bundles, out_dir, anonymize, pool, group_by, title):
    """Write a report of BUNDLES: report.md and a self-contained report.html with the
    system table, method, results with CIs, plots, confounds and the commands to reproduce."""
    from analysis.load import SETUP_KEYS
    from analysis.report import build

    from .errors import UsageError

    keys = [k for k in group_by.split(",") if k]
    for k in keys:
        if k not in SETUP_KEYS + ["bundle"]:
            raise UsageError(f"unknown --group-by key {k!r}", hint="choose from: " + ", ".join(SETUP_KEYS))
    if keys and not pool:
        raise UsageError("--group-by needs --pool", hint="add --pool, or drop --group-by")
    args = [shlex.quote(b) for b in bundles] + ["--out", shlex.quote(out_dir)]
    args += (["--anonymize"] if anonymize else []) + (["--pool"] if pool else [])
    args += ["--group-by", ",".join(keys)] if keys else []
    md, html = build(bundles, out_dir, anonymize_hosts=anonymize, group_by=keys if pool else ["bundle"],
                     title=title, report_args=args)
    click.echo(f"report: {md}\nreport: {html}")
# -- compare ---------------------------------------------------------------------

@cli.command()
@click.argument("bundle_a", type=click.Path())
@click.argument("bundle_b", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(bundle_a, bundle_b, as_json):
    """Compare two bundles cell by cell: both figures with CIs, the difference
    B - A with a Welch CI over rounds, and whether it is significant."""
    from analysis.compare import compare as do_compare

    from .ui import print_compare

    result = do_compare(bundle_a, bundle_b)
    if as_json:
        click.echo(json.dumps(result, indent=1, default=str))
    else:
        print_compare(result)


# -- kernel ----------------------------------------------------------------------

@cli.group()
def kernel():
    """The lab's own arm64 kernels, built from Debian's source (regs and fallback)."""


@kernel.command("build")
@click.option("--variant", type=click.Choice(["regs", "fallback"]), required=True,
              help="regs: DYNAMIC_FTRACE_WITH_REGS as Debian ships it; fallback: the same tree "
                   "without it (mcount-style DYNAMIC_FTRACE).")
@click.option("--source", type=click.Choice(["debian-6.1"]), default="debian-6.1", show_default=True,
              help="Kernel source: Debian's linux-source package.")
@click.option("--config", "fragment", type=click.Path(dir_okay=False), default=None,
              help="Config fragment applied on top of allnoconfig (default: "
                   "remote/kconfig/lab-6.1.fragment, shared by both variants).")
@click.option("--jobs", type=click.IntRange(1, 256), default=None,
              help="make -j (default: the number of CPUs).")
def kernel_build(variant, source, fragment, jobs):
    """Build (once, cached) an arm64 kernel variant, its module build tree and
    the suite's module for it; print where it is and how the variants' configs differ."""
    from remote import kbuild

    kdir = kbuild.build(variant, source, fragment, jobs=jobs,
                        progress=lambda t: click.echo(f"> {t}", err=True))
    m = kbuild.load_manifest(kdir)
    kbuild.build_module(kdir, progress=lambda t: click.echo(f"> {t}", err=True))
    confounds = m["config_comparison"]["confounds"]
    click.echo(f"kernel {variant}: {m['kernel_release']} in {kdir}")
    click.echo(f"  Image {m['image_bytes'] / 2**20:.1f} MiB, built in {m['build_seconds']:.0f} s "
               f"(-j{m['jobs']}, {m['host']})")
    click.echo("  ftrace: " + ", ".join(f"{k}={v}" for k, v in m["ftrace"].items()))
    click.echo(f"  configs of both variants and their diff: {kdir}/config.regs, config.fallback, "
               "config.diff")
    click.echo("  confounds (differences beyond the ftrace mechanism): "
               + (", ".join(f"{k} {v['regs']} vs {v['fallback']}" for k, v in confounds.items())
                  if confounds else "none"))


# -- lab -------------------------------------------------------------------------

@cli.group()
def lab():
    """The local QEMU arm64 lab: a real Debian arm64 kernel, reached as --host lab."""


@lab.command("build")
@click.option("--kernel", default="debian-6.1", show_default=True,
              help="Lab kernel whose image to build: debian-6.1, debian-6.12 or debian-5.10 (regs-6.1 and "
                   "fallback-6.1 also need 'bench kernel build' first).")
def lab_build(kernel):
    """Build (once, cached) the lab's image without booting it; a second build
    of the same image at the same time waits for the first."""
    from remote import lab as labmod

    t0 = time.monotonic()
    dest = labmod.build(labmod.select(kernel), progress=lambda t: click.echo(f"> {t}", err=True))
    click.echo(f"lab image {kernel}: {dest} ({time.monotonic() - t0:.0f} s)")


@lab.command("up")
@click.option("--kernel", default="debian-6.1", show_default=True,
              help="Lab kernel to boot: debian-6.1, debian-6.12, debian-5.10 (Debian 11: Python 3.9), "
                   "regs-6.1 or fallback-6.1 (the last two need 'bench kernel build' first).")
@click.option("--accel", type=click.Choice(["icount", "tcg", "kvm"]), default="icount", show_default=True,
              help="How QEMU runs the guest.  icount: TCG with -icount shift=0 on one vCPU; guest "
                   "time counts executed instructions (1 ns each), so figures are instruction counts, "
                   "repeatable and independent of host load: they resolve the regs gain (about 9 "
                   "instructions).  tcg: plain TCG; figures are the guest's wall-clock ns, which "
                   "move with host load by up to half between cells: they show large costs (the "
                   "function tracer's) but cannot resolve the regs gain.  kvm: an aarch64 host with "
                   "/dev/kvm; a real CPU's ns.")
@click.option("--smp", type=click.IntRange(1, 64), default=None,
              help="vCPUs (default: 1 under TCG, which is less noisy on a small host; 2 under KVM; "
                   "icount always 1).")
@click.option("--memory", type=click.IntRange(512, 65536), default=2048, show_default=True,
              help="Guest memory in MiB.")
@click.option("--icount", is_flag=True, help="The same as --accel icount (the default).")
@click.option("--no-pmu", is_flag=True,
              help="Boot the guest without a PMU (-cpu ...,pmu=off), as a cloud VM whose hypervisor "
                   "does not pass the PMU through: bench check then says why there are no counters.")
@click.option("--boot-timeout", type=click.FloatRange(10, 3600), default=300, show_default=True,
              help="Seconds to wait for SSH.")
def lab_up(kernel, accel, smp, memory, icount, no_pmu, boot_timeout):
    """Build (once, cached) and boot the lab."""
    from remote import lab as labmod

    from .errors import UsageError

    if icount and accel != "icount":
        raise UsageError(f"--icount is --accel icount; it cannot be combined with --accel {accel}",
                         hint="drop one of them")
    cfg = labmod.LabConfig(kernel=kernel, accel="tcg" if accel == "icount" else accel, smp=smp,
                           memory_mb=memory, icount=accel == "icount", pmu=not no_pmu)
    state = labmod.up(cfg, progress=lambda t: click.echo(f"> {t}", err=True), boot_timeout=boot_timeout)
    click.echo(f"lab up: {state['kernel']} ({state['kernel_release']}), QEMU {state['accel']}"
               f"{' icount' if state.get('icount') else ''}{'' if state.get('pmu', True) else ', no PMU'}, "
               f"SSH 127.0.0.1:{state['port']}"
               + (f", booted in {state['boot_seconds']} s" if state.get("boot_seconds") else ""))


@lab.command("down")
@click.option("--timeout", type=click.FloatRange(1, 600), default=60, show_default=True,
              help="Seconds to wait for the clean power-off before killing QEMU.")
def lab_down(timeout):
    """Power the lab off cleanly; kill QEMU after --timeout."""
    from remote import lab as labmod

    click.echo(f"lab: {labmod.down(timeout=timeout, progress=lambda t: click.echo(f'> {t}', err=True))}")


@lab.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lab_status(as_json):
    """Say whether the lab is up, with what kernel, accel and port."""
    from remote import lab as labmod

    state = labmod.read_state()
    if as_json:
        click.echo(json.dumps(state or {"alive": False}, indent=1))
        return
    if not state or not state["alive"]:
        click.echo("lab: down")
        return
    ready = labmod.ssh_banner(state["port"])
    click.echo(f"lab: up, {state['kernel']} ({state['kernel_release']}), QEMU {state['accel']}"
               f"{' icount' if state.get('icount') else ''}{'' if state.get('pmu', True) else ', no PMU'}, pid {state['pid']}, "
               f"SSH 127.0.0.1:{state['port']} {'ready' if ready else 'not answering'}")


@lab.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def lab_ssh(command):
    """Open a shell in the lab, or run COMMAND there (bench lab ssh -- CMD ...).

    As with ssh, the words of COMMAND are joined with spaces and the remote
    shell runs the result: bench lab ssh -- 'uname -r; id' runs two commands,
    and anything the remote shell must keep whole needs quoting for it."""
    from remote import lab as labmod
    from remote.errors import LabError

    state = labmod.read_state()
    if not state or not state["alive"]:
        raise LabError("the lab is not running", hint="start it with 'bench lab up'")
    sys.exit(subprocess.call(labmod.ssh_argv(state["ssh_config"], command)))


@lab.command("ssh-config")
@click.option("--user", default="admin", show_default=True, metavar="NAME",
              help="The login: 'admin' (passwordless sudo, as a cloud image's) or 'root'.")
@click.option("--alias", metavar="NAME", help="The Host alias (default: lab-USER).")
def lab_ssh_config(user, alias):
    """Print a Host block for the running lab, to paste into ~/.ssh/config.

    Then the lab is reached as a user's own host is: bench run --host
    lab-admin, through sudo as the admin login.  The port changes with every
    'bench lab up': print the block again after each."""
    from remote import lab as labmod

    click.echo(labmod.user_ssh_config(user=user, alias=alias), nl=False)


@lab.command("logs")
@click.option("-n", "--lines", type=int, default=0, help="Only the last N lines.")
def lab_logs(lines):
    """Print the lab's console log."""
    from remote import lab as labmod
    from remote.errors import LabError

    path = labmod.RUN_DIR / "console.log"
    if not path.exists():
        raise LabError("no console log: the lab has not been started", hint="run 'bench lab up'")
    text = path.read_text(errors="replace").splitlines()
    click.echo("\n".join(text[-lines:] if lines else text))


# -- lava ------------------------------------------------------------------------

@cli.group()
def lava():
    """Boards through LAVA: job definitions the suite renders (docs/lava.md)."""


@lava.command("render")
@click.option("--device-type", required=True, metavar="TYPE",
              help="LAVA device type: qemu (the lab's kernel and image) or an arm64 board's "
                   "(bench.lava.jobs.DEVICE_TYPES).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the job definition (YAML).")
@click.option("--profile", default="smoke", show_default=True, help="Profile of the plan the job runs.")
@click.option("--modes", default="noregs,regs", show_default=True, help="Modes (off is always measured).")
@click.option("--methods", default="kernel", show_default=True, help="Methods the device runs.")
@click.option("--seed", type=int, default=None, help="Seed of the plan's order.")
@click.option("--set", "values", multiple=True, metavar="KEY=VALUE",
              help="A template value: kernel_url, initrd_url, rootfs_url, rootfs_format, icount "
                   "(qemu); kernel_url, dtb_url, nfsrootfs_url, login_prompt (boards); an unknown "
                   "key is refused with the list (docs/lava.md).")
@click.option("--kmod", type=click.Path(exists=True, dir_okay=False),
              help="A module built for the device's kernel, shipped with the agent.")
@click.option("--no-validate", is_flag=True, help="Skip lava-common's schema check.")
def lava_render(device_type, out, profile, modes, methods, seed, values, kmod, no_validate):
    """Render a LAVA job that runs a plan on the device with the standalone
    runner and returns the bundle in its log."""
    from .lava import jobs

    job = jobs.render(device_type, jobs.request(profile, modes, methods, seed),
                      jobs.parse_values(values), kmod=kmod)
    path = jobs.write(job, out)
    how = "not validated (--no-validate)" if no_validate else jobs.validate(path)
    click.echo(f"{path}: LAVA job for device type {device_type}, {how}")


@lava.command("submit")
@click.option("--url", required=True, metavar="URL",
              help="The LAVA server's address (https://lava.example.org; lavacli's .../RPC2 is "
                   "accepted).  The token: $LAVA_TOKEN or lavacli's identities file.")
@click.option("--device-type", metavar="TYPE",
              help="LAVA device type to render the job for (required unless --job).")
@click.option("--job", "job_file", type=click.Path(exists=True, dir_okay=False),
              help="Submit this job definition instead of rendering one.")
@click.option("--identity", default=None, metavar="ID",
              help="lavacli identity whose token to use (default: $LAVA_TOKEN, else the "
                   "identity whose uri names --url's server).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Bundle directory (default: results/<device>/<UTC time>).")
@click.option("--timeout", type=click.FloatRange(10, 7 * 24 * 3600), default=4 * 3600.0,
              show_default=True, help="Seconds to wait for the job to finish (it is left "
                                      "running on the server past that).")
@click.option("--poll", type=click.FloatRange(0.5, 600), default=10.0, show_default=True,
              help="Seconds between two looks at the job.")
@click.option("--profile", default="smoke", show_default=True, help="Profile of the plan the job runs.")
@click.option("--modes", default="noregs,regs", show_default=True, help="Modes (off is always measured).")
@click.option("--methods", default="kernel", show_default=True, help="Methods the device runs.")
@click.option("--seed", type=int, default=None, help="Seed of the plan's order.")
@click.option("--set", "values", multiple=True, metavar="KEY=VALUE",
              help="A template value, as for 'bench lava render'.")
@click.option("--kmod", type=click.Path(exists=True, dir_okay=False),
              help="A module built for the device's kernel, shipped with the agent.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def lava_submit(url, device_type, job_file, identity, out, timeout, poll, profile, modes, methods,
                seed, values, kmod, quiet):
    """Submit a job to a LAVA server, follow it, and rebuild its bundle from
    its log (bench report and bench export read it like any other)."""
    import yaml

    from .errors import UsageError
    from .lava import client as lava_client

    root = lava_client.server_root(url)
    if job_file:
        try:
            definition = pathlib.Path(job_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read {job_file} as a LAVA job definition (UTF-8 YAML): "
                             f"{getattr(e, 'strerror', None) or e.__class__.__name__}")
        try:
            job_type = (yaml.safe_load(definition) or {}).get("device_type")
        except (yaml.YAMLError, AttributeError):
            raise UsageError(f"{job_file} is not a LAVA job definition (YAML mapping)")
        if device_type and job_type != device_type:
            raise UsageError(f"--device-type {device_type} differs from the job's device_type "
                             f"{job_type!r}", hint="drop --device-type with --job")
    elif not device_type:
        raise UsageError("--device-type or --job is needed", hint="e.g. --device-type qemu")
    else:
        from .lava import jobs

        definition = jobs.render(device_type, jobs.request(profile, modes, methods, seed),
                                 jobs.parse_values(values), kmod=kmod)
    if out:
        created = _prepare_out(out)
        _remove_empty(created)  # rebuild() creates it again; nothing is left if the job fails
    token, _where = lava_client.find_token(root, identity)
    client = lava_client.Client(root, token)
    echo = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    command = "bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        path, job, tests = lava_client.run_job(client, definition, out=out, timeout=timeout,
                                               poll=poll, command=command, echo=echo)
    finally:
        client.close()
    for key, (value, unit, result) in sorted(lava_client.measurements(tests).items()):
        click.echo(f"{key}: {value:g} {unit} ({result})")
    click.echo(f"bundle: {path}", err=True)


def main():
    """Entry point: click's usage errors become one line too."""
    try:
        code = cli.main(prog_name="bench", standalone_mode=False)
    except click.UsageError as e:
        where = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
        click.echo(f"bench: error: {e.format_message()}{where}", err=True)
        sys.exit(EXIT_CODES["usage"][0])
    except click.ClickException as e:
        click.echo(f"bench: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("bench: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
