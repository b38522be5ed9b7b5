"""OpenMP defaults set by ``acnn_fusion.core`` before torch loads (docs/performance.md, Contention).

The wait policy must reach torch's OpenMP runtime, which reads it once when torch is
imported, so these checks run in fresh interpreters; ``OMP_DISPLAY_ENV=verbose`` makes GNU
OpenMP print the values it actually uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from acnn_fusion import core

WAIT_AND_THREADS = (
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "OMP_NUM_THREADS",
    "OMP_DISPLAY_ENV",
)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with this checkout's sources and the given OpenMP env."""
    environ = {k: v for k, v in os.environ.items() if k not in WAIT_AND_THREADS}
    src = str(Path(core.__file__).resolve().parents[2])
    environ["PYTHONPATH"] = src + os.pathsep + environ.get("PYTHONPATH", "")
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120, check=True
    )


# import the way a user does, then make torch start its OpenMP threads
USER_IMPORT = (
    "import os\n"
    "from acnn_fusion.core.inference import select_device\n"
    "import torch\n"
    "torch.ones(64, 64) @ torch.ones(64, 64)\n"
    "from acnn_fusion import core\n"
    "print('policy', os.environ.get('OMP_WAIT_POLICY'))\n"
    "print('applied', sorted(core.OPENMP_DEFAULTS_APPLIED))\n"
)


def gomp_value(stderr: str, name: str) -> str:
    """The value GNU OpenMP reports for ``name`` under ``OMP_DISPLAY_ENV``."""
    for line in stderr.splitlines():
        if line.strip().startswith(f"{name} ="):
            return line.split("=", 1)[1].strip().strip("'")
    pytest.skip("torch's OpenMP runtime did not report its settings (not GNU OpenMP?)")


def test_core_import_makes_openmp_threads_sleep_instead_of_spinning() -> None:
    result = run_python(USER_IMPORT, OMP_DISPLAY_ENV="verbose")
    assert "policy PASSIVE" in result.stdout
    assert "applied ['OMP_WAIT_POLICY']" in result.stdout
    # GNU OpenMP spins 300000 times when no policy is set; PASSIVE reaches it only if set before torch loads
    assert gomp_value(result.stderr, "GOMP_SPINCOUNT") == "0"


@pytest.mark.parametrize(
    ("name", "value", "spin_count"),
    [("OMP_WAIT_POLICY", "ACTIVE", "30000000000"), ("GOMP_SPINCOUNT", "12345", "12345")],
)
def test_a_wait_setting_the_user_chose_is_kept(name: str, value: str, spin_count: str) -> None:
    result = run_python(USER_IMPORT, OMP_DISPLAY_ENV="verbose", **{name: value})
    assert "applied []" in result.stdout
    assert gomp_value(result.stderr, "GOMP_SPINCOUNT") == spin_count
    if name == "GOMP_SPINCOUNT":  # the policy stays unset: GNU OpenMP's own default
        assert "policy None" in result.stdout


def test_nothing_is_set_when_torch_was_imported_first() -> None:
    result = run_python("import torch\n" + USER_IMPORT)
    assert "policy None" in result.stdout
    assert "applied []" in result.stdout


def test_configure_openmp_only_fills_what_is_unset(tmp_path: Path) -> None:
    no_quota = tmp_path / "missing"
    environ: dict[str, str] = {}
    assert core.configure_openmp(environ, no_quota) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    for chosen in ({"OMP_WAIT_POLICY": "active"}, {"KMP_BLOCKTIME": "0"}, {"GOMP_SPINCOUNT": "1"}):
        environ = dict(chosen)
        assert core.configure_openmp(environ, no_quota) == {}
        assert environ == chosen


def test_cgroup_quota_caps_the_thread_count(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")  # 1.5 CPUs
    assert core.cgroup_cpu_limit(cpu_max) == 2
    cpu_max.write_text("max 100000\n")
    assert core.cgroup_cpu_limit(cpu_max) is None
    assert core.usable_cpus(cpu_max) == core.affinity_cpus()
    cpu_max.write_text("50000 100000\n")  # half a CPU: one thread
    assert core.cgroup_cpu_limit(cpu_max) == 1
    assert core.usable_cpus(cpu_max) == 1
    environ: dict[str, str] = {}
    applied = core.configure_openmp(environ, cpu_max)
    if core.affinity_cpus() > 1:
        assert applied["OMP_NUM_THREADS"] == "1"
    else:
        assert "OMP_NUM_THREADS" not in applied
    environ = {"OMP_NUM_THREADS": "4"}
    assert "OMP_NUM_THREADS" not in core.configure_openmp(environ, cpu_max)
    assert environ["OMP_NUM_THREADS"] == "4"


def test_thread_settings_reports_the_runtime_state() -> None:
    import torch

    from acnn_fusion.core.inference import thread_settings

    report = thread_settings()
    assert report["torch_threads"] == torch.get_num_threads()
    assert report["usable_cpus"] == core.usable_cpus()
    assert report["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY")
    assert report["set_by_acnn_fusion"] == core.OPENMP_DEFAULTS_APPLIED
