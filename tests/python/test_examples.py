"""The Python example runs against the installed package and prints what it did."""
import pathlib
import subprocess
import sys

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "quickstart.py"


def test_python_quickstart(tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path / "db")],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    assert "[py] scan lang/rust = 2015" in out
    assert "KeyTooLargeError" in out
