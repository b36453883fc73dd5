"""ftrace-regs-bench: the controller (CLI, plan, orchestration, bundle format)."""
__version__ = "0.1.0"
