"""Pure logic of the bpf method and of --tune's restore (no root, no kernel)."""
import json

from remote.agent import bpfmethod, bpfprobe, tune


def test_program_fills_every_placeholder():
    text = bpfprobe.program(173, 0, 4, 1024)
    for name in ("SYSCALL_NR", "LIN_LO", "LIN_STEP", "LIN_SLOTS"):
        assert name not in text
    assert "args->id != 173" in text and "BPF_HISTOGRAM(hist_linear, int, 1026)" in text


def test_syscall_numbers_per_arch_and_unknown_arch_refused():
    assert bpfmethod.syscall_nr("getppid", "aarch64") == 173
    assert bpfmethod.syscall_nr("getppid", "x86_64") == 110
    try:
        bpfmethod.syscall_nr("getppid", "sparc64")
    except bpfmethod.BpfError as e:
        assert e.kind == "unsupported" and "sparc64" in str(e)
    else:
        raise AssertionError("an unknown arch must be refused, not guessed")


def test_tune_writes_originals_to_the_state_before_writing_and_restores_bytes(tmp_path, monkeypatch):
    """apply() persists each original before its file is written; restore()
    puts the exact bytes back (here on ordinary files standing in for sysfs)."""
    gov = tmp_path / "scaling_governor"
    rate = tmp_path / "perf_event_max_sample_rate"
    gov.write_bytes(b"schedutil\n")
    rate.write_bytes(b"100000\n")
    monkeypatch.setattr(tune, "settings", lambda cpu: [(str(gov), b"performance\n"),
                                                       (str(rate), b"1\n")])
    saved, states = {}, []
    written_when_saved = []

    def save():
        states.append(json.dumps(saved))
        written_when_saved.append((gov.read_bytes(), rate.read_bytes()))

    changed = tune.apply(3, saved, save)
    assert [c["after"] for c in changed] == ["performance", "1"]
    # each save happened before its file changed
    assert written_when_saved[0] == (b"schedutil\n", b"100000\n")
    assert written_when_saved[1] == (b"performance\n", b"100000\n")
    assert tune.restore(saved) == []
    assert gov.read_bytes() == b"schedutil\n" and rate.read_bytes() == b"100000\n"
    # restore is idempotent (the agent's restore and the guardian may both run)
    assert tune.restore(json.loads(states[-1])) == []


def test_tune_skips_files_already_as_wanted(tmp_path, monkeypatch):
    gov = tmp_path / "scaling_governor"
    gov.write_bytes(b"performance\n")
    monkeypatch.setattr(tune, "settings", lambda cpu: [(str(gov), b"performance\n")])
    saved = {}
    assert tune.apply(0, saved, lambda: None) == [] and saved == {}
