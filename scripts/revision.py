"""Loading a module of ``rlhf_gym`` as it was at an earlier git revision, beside the current package.

The A/B benchmarks (``bench_window.py``, ``bench_sampler.py``) time the current code against an earlier
revision's in one process, alternating repeat by repeat, so that a change in machine load hits both alike. The
earlier module imports the *current* package for everything else, so a revision whose module needs helpers that
have since changed cannot be compared; that is a one-line error naming the revision. :func:`use_helpers` points
the earlier module at an earlier helper module instead (e.g. its ``cached_forward``), so that a change to the
helper is on the earlier side's ledger too.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_at(revision: str, path: str, script: str) -> ModuleType:
    """``path`` (e.g. ``rlhf_gym/core/window.py``) as it was at ``revision``, as a module of its own.

    Exits with ``<script>: error: ...`` if git cannot show the file or the old module does not import.
    """
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:{path}"],
                                check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"{script}: error: cannot read {path} at {revision!r}: {getattr(e, 'stderr', '') or e}".strip())
    name = f"earlier_{Path(path).stem}"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(name, f.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # it imports the current package: an old module may need what no longer exists
        sys.exit(f"{script}: error: {path} at {revision!r} does not load beside the current code: "
                 f"{type(e).__name__}: {e}")
    finally:
        Path(f.name).unlink()
    return module


def use_helpers(module: ModuleType, current: ModuleType, earlier: ModuleType) -> None:
    """Rebinds every name ``module`` imported from ``current`` to ``earlier``'s object of that name, if it has one."""
    for name, value in list(vars(module).items()):
        if not name.startswith("__") and getattr(current, name, None) is value and hasattr(earlier, name):
            setattr(module, name, getattr(earlier, name))
