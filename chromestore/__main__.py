"""``python -m chromestore``: the command line."""

from chromestore.app.cli import run

run()
