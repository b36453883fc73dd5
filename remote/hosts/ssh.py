"""--host ALIAS: a Host alias of the ssh config (--ssh-config, else
$BENCH_SSH_CONFIG, else ~/.ssh/config), reached over paramiko (remote/ssh.py)."""
from .. import ssh
from .base import Host


class SSHHost(Host, ssh.SSHTarget):

    @classmethod
    def names(cls, ssh_config=None):
        return ssh.aliases(ssh_config)

    @classmethod
    def claims(cls, name, ssh_config=None):
        # Not names(): a pattern ('Host board-*') claims names it does not list.
        return ssh.configured(name, ssh_config)

    @classmethod
    def open(cls, name, *, accept_new_host_key=False, ssh_config=None, timeout=None):
        spec = ssh.resolve(name, ssh_config)
        return cls(name, ssh.connect(spec, accept_new_host_key=accept_new_host_key, timeout=timeout),
                   spec)
