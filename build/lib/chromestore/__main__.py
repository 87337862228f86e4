"""``python -m chromestore``: the command line."""

from chromestore.app.cli import main

main(prog_name="chromestore")
