"""Loads the C++ core with OpenMP idle threads that stop spinning soon (shared cores).

libgomp reads its wait settings once, when the dynamic loader brings it in with ``_core``. By
default an idle worker spins for up to 300,000 pauses (milliseconds) before it sleeps; on a
machine whose cores are busy with other work that spinning takes CPU time from the threads
doing the work, and a 2-thread epoch took 2-7x as long as a 1-thread one (benchmarks/
RESULTS.md, "Shared cores"). Unless the user chose (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``
set), ``GOMP_SPINCOUNT`` is set to 1000 - libgomp's own figure for more threads than cores -
for that one load, then removed again so no child process or other library inherits it.
The kernels also pick their team by measuring (``config()["adaptive_threads"]``).
"""
from __future__ import annotations

import os

SPIN_COUNT = "1000"


def _libgomp_loaded() -> bool:
    """Whether the libgomp _core links to is already in this process (the loader then reuses
    it, settings and all): one named libgomp.so.1 (the system's, or a wheel's that kept the
    name, as torch's does), or a copy in fastgru.libs. Copies renamed by auditwheel
    (libgomp-<hash>.so.1) are other runtimes, not this one."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line}
    except OSError:  # not Linux: no /proc; libgomp is Linux's OpenMP runtime anyway
        return False
    return any(os.path.basename(path).startswith("libgomp.so.1") or "fastgru.libs" in path
               for path in paths)


def _describe_user_choice() -> str | None:
    chosen = [f"{name}={os.environ[name]}" for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
              if name in os.environ]
    return ", ".join(chosen) + " (set by the user)" if chosen else None


def _load_core():
    user = _describe_user_choice()
    if user is not None:
        from . import _core
        return _core, user
    if _libgomp_loaded():
        from . import _core
        return _core, "libgomp's defaults (it was loaded before fastgru)"
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        from . import _core
    finally:
        del os.environ["GOMP_SPINCOUNT"]
    return _core, f"GOMP_SPINCOUNT={SPIN_COUNT} (fastgru's default for its libgomp)"


_core, wait_policy = _load_core()
