"""README.md's supported-op list is generated from the lowering registry; it must not go stale."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_op_list_matches_the_registry():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_supported_ops.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or result.stdout
