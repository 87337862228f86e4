"""Layering: chromestore never imports torch, training or analysis."""

import subprocess
import sys


def test_chromestore_never_imports_torch():
    code = (
        "import sys, chromestore, chromestore.cli, chromestore.ingest, chromestore.query\n"
        "bad = [m for m in ('torch', 'training', 'analysis') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
