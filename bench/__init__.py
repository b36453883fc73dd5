"""ftrace-regs-bench: the controller (CLI, plan, orchestration)."""
__version__ = "0.1.0"
