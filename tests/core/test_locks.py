"""``core.locks.try_exclusive`` across processes, on both deployments: Redis, and the
embedded file lock (no Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import PROJECT_ROOT

HOLD = textwrap.dedent(
    """
    import sys, time
    from core.locks import try_exclusive
    with try_exclusive("test-lock") as held:
        print(held, flush=True)
        sys.stdin.readline()  # hold until the test says so
    """
)
TRY = textwrap.dedent(
    """
    from core.locks import try_exclusive
    with try_exclusive("test-lock") as held:
        print(held)
    """
)


@pytest.mark.parametrize("deployment", ["redis", "embedded"])
def test_second_holder_skips_while_first_holds_then_gets_it(
    deployment: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DEME_VAR_DIR": str(tmp_path)}
    if deployment == "embedded":
        env.pop("DEME_REDIS_URL", None)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "True"

        def attempt() -> str:
            done = subprocess.run(
                [sys.executable, "-c", TRY],
                cwd=PROJECT_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        assert attempt() == "False"  # taken: skipped at once, no waiting
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
        assert attempt() == "True"  # released
    finally:
        holder.kill()
        holder.wait()
