"""The malloc policy of a compute process (cellrobust._allocator): freed blocks are reused,
a user's own glibc settings win, and the policy is recorded next to results."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cellrobust import _allocator

glibc = pytest.mark.skipif(_allocator._unchanged_reason() == "system" or not sys.platform
                           .startswith("linux"), reason="glibc's mallopt only")

#: Mallocs, touches and frees a 64 MB block twice (through libc itself: numpy asks for huge
#: pages above 4 MB); prints the minor page faults of the second round (a block reused from the
#: heap faults few pages; a fresh mmap faults all 16,384 of 4 KiB).
_FAULTS = textwrap.dedent("""
    import ctypes, json, resource, sys
    from cellrobust import _allocator
    record = _allocator.retain_freed_memory() if sys.argv[1] == "retain" else None
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    def round_():
        block = libc.malloc(ctypes.c_size_t(64 * 2**20))
        ctypes.memset(block, 1, 64 * 2**20)
        libc.free(block)
    round_()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    round_()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(json.dumps({"faults": faults, "record": record,
                      "now": _allocator.allocator_record()}))
""")


def _faults(mode: str, env: dict | None = None) -> dict:
    import json
    import os

    environ = {k: v for k, v in os.environ.items() if k not in _allocator.USER_SETTINGS}
    done = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True,
                          text=True, timeout=120, env={**environ, **(env or {})}, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc
def test_retained_blocks_are_reused_without_faulting_their_pages_again():
    default, retained = _faults("system"), _faults("retain")
    assert default["now"] == {"policy": "system"} and default["faults"] > 10_000
    assert retained["record"] == retained["now"]
    assert retained["record"]["policy"] == "retain"
    assert 0 < retained["record"]["threshold_bytes"] <= _allocator.RETAIN_BYTES
    assert retained["faults"] < 1_000


@glibc
def test_a_users_own_malloc_settings_win():
    out = _faults("retain", env={"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert out["record"] == {"policy": "user"} and out["faults"] > 10_000


@pytest.mark.parametrize("env, expected", [
    ({"MALLOC_MMAP_THRESHOLD_": "1"}, "user"),
    ({"MALLOC_TOP_PAD_": "0"}, "user"),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}, "user"),
    ({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"}, None),
])
def test_user_settings_are_recognised(monkeypatch, env, expected):
    for name in (*_allocator.USER_SETTINGS, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reason = _allocator._unchanged_reason()
    assert reason == expected or (expected is None and reason == "system"
                                  and not sys.platform.startswith("linux"))


@glibc
def test_the_threshold_is_bounded_by_a_quarter_of_the_available_memory():
    code = textwrap.dedent("""
        from cellrobust import _allocator, _threads
        _threads.available_memory = lambda: 64 * 2**20
        print(_allocator.retain_freed_memory()["threshold_bytes"])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert int(done.stdout.split()[-1]) == 16 * 2**20


def test_provenance_records_the_malloc_policy():
    from cellrobust.stages._record import provenance

    record = provenance("sweep", {"x": 1})["allocator"]
    assert record == _allocator.allocator_record() and record["policy"] in (
        "retain", "user", "system")
