"""What the agent's precondition guarantees, as both sides name it
(remote/agent/precondition.py explains the pid floor)."""
# The first pid the kernel hands out after wrapping (RESERVED_PIDS in
# kernel/pid.c): from here on no pid in this namespace is <= 256 again.
PID_FLOOR = 300
# CPython's cached small ints are -5..256 (Include/internal/pycore_global_objects.h,
# _PY_NSMALLPOSINTS = 257).
SMALL_INT_MAX = 256
