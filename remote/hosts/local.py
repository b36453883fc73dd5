"""--host local: the machine bench runs on, no SSH."""
from ..target import LocalTarget
from .base import Host


class LocalHost(Host, LocalTarget):
    fixed_names = ("local",)

    @classmethod
    def open(cls, name, *, accept_new_host_key=False, ssh_config=None, timeout=None):
        return cls(name)
