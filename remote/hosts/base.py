"""What every host kind is: a Target that also knows which --host names are
its own and how to open one of them."""


class Host:
    """Mixed into a Target class (LocalTarget, SSHTarget) to make a host kind.

    The class side answers for names: names(), claims(), open().  The
    instance side is the opened target, and carries what the host knows about
    itself beyond what the agent finds on it (host_facts, host_checks).
    """

    # A kind with names of its own ('local', 'lab'); kinds whose names come
    # from elsewhere (the ssh config) override names() and claims().
    fixed_names = ()

    @classmethod
    def names(cls, ssh_config=None):
        """The names this kind answers to, as listed in the unknown-host error."""
        return list(cls.fixed_names)

    @classmethod
    def claims(cls, name, ssh_config=None):
        return name in cls.names(ssh_config)

    @classmethod
    def open(cls, name, *, accept_new_host_key=False, ssh_config=None, timeout=None):
        """A connected instance for name (a name this kind claims)."""
        raise NotImplementedError

    def host_facts(self):
        """Facts about the host that the agent cannot see from inside (the
        lab: the QEMU it runs in); merged into the facts a bundle records."""
        return {}

    def host_checks(self):
        """Lines `bench check` adds about the host itself, by check name."""
        return {}
