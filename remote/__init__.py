"""Everything that touches a machine: SSH, the local host, the lab, the agent."""
