"""--host lab: the QEMU lab (remote/lab.py) that `bench lab up` started,
reached over SSH through the ssh_config and pinned host key written next to
it.  The QEMU it runs in is part of its facts."""
from .. import lab, ssh
from ..errors import LabError
from .base import Host


class LabHost(Host, ssh.SSHTarget):
    fixed_names = ("lab",)

    def __init__(self, name, client, spec, state):
        super().__init__(name, client, spec)
        self.state = state  # remote.lab.read_state() when it was opened

    @classmethod
    def open(cls, name, *, accept_new_host_key=False, ssh_config=None, timeout=None):
        # The lab's own ssh_config and known_hosts, never the user's: its host
        # key was pinned when its image was built.
        state = lab.read_state()
        if not state or not state["alive"]:
            raise LabError("the lab is not running", hint="start it with 'bench lab up'")
        spec = ssh.resolve(name, state["ssh_config"])
        return cls(name, ssh.connect(spec, timeout=timeout), spec, state)

    def host_facts(self):
        lab_facts = {k: self.state.get(k) for k in ("kernel", "kernel_release", "accel", "icount",
                                                     "smp", "memory_mb", "cpu_model", "qemu_version",
                                                     "boot_seconds")}
        lab_facts["emulated"] = self.state.get("accel") != "kvm"
        lab_facts["pmu"] = self.state.get("pmu", True)  # (a state from before --no-pmu had one)
        return {"lab": lab_facts}

    def host_checks(self):
        facts = self.host_facts()["lab"]
        return {"lab": {"ok": True, "value": facts,
                        "reason": f"QEMU {facts['accel']}{' icount' if facts.get('icount') else ''}, "
                                  f"{'emulated' if facts['emulated'] else 'KVM'}"
                                  f"{'' if facts['pmu'] else ', no PMU (bench lab up --no-pmu)'}"}}
