"""Boards through LAVA (docs/lava.md): the suite's job definitions
(jobs.py, templates/), the plan they carry, and the bundle rebuilt from a
job's log (bundle.py).  On the device, remote/agent/runner.py runs the plan
without a controller; here nothing talks to the device."""
