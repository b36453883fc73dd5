"""--host NAME -> a Target: 'local', 'lab', or a Host alias in ~/.ssh/config."""
from remote import lab
from remote.errors import LabError
from remote.target import LocalTarget


def open_target(host, *, accept_new_host_key=False, ssh_config=None, timeout=None):
    """Returns (target, lab_state or None)."""
    if host == "local":
        return LocalTarget("local"), None
    from remote.ssh import open_ssh_target

    if host == "lab":
        state = lab.read_state()
        if not state or not state["alive"]:
            raise LabError("the lab is not running", hint="start it with 'bench lab up'")
        target = open_ssh_target("lab", config_path=state["ssh_config"], timeout=timeout)
        return target, state
    target = open_ssh_target(host, config_path=ssh_config, accept_new_host_key=accept_new_host_key,
                             timeout=timeout)
    return target, None
