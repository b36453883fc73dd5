"""--host NAME -> a connected Target.

A host kind is one module here: a Host subclass (base.py) that knows its
names and opens its target.  KINDS is the order in which kinds are asked;
the first that claims a name opens it, so 'local' and 'lab' win over an ssh
alias of the same name.
"""
from ..ssh import unknown_host
from .lab import LabHost
from .local import LocalHost
from .ssh import SSHHost

KINDS = (LocalHost, LabHost, SSHHost)


def find(name, ssh_config=None):
    """The kind that claims name; else HostNotFound listing every valid name."""
    for kind in KINDS:
        if kind.claims(name, ssh_config):
            return kind
    valid = dict.fromkeys(n for kind in KINDS for n in kind.names(ssh_config))
    raise unknown_host(name, ssh_config, valid=list(valid))


def open_target(name, *, accept_new_host_key=False, ssh_config=None, timeout=None):
    return find(name, ssh_config).open(name, accept_new_host_key=accept_new_host_key,
                                       ssh_config=ssh_config, timeout=timeout)
