"""The modes a cell can measure in, in their display and planning order.

(To become a registry with one file per mode.)
"""
MODES = ("off", "function", "function-all", "noregs", "regs")
