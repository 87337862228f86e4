"""The stages of a long job, shown as it goes: the one stage-progress helper.

A job (``chromestore run``, ``chromestore analyze``) passes through named stages; each is
a ``with stages("title"):`` block. :class:`Stages` shows them one of two ways, on stderr:

- ``"lines"``: ``==> title`` when a stage begins and ``    done in N s`` when it ends
  (a log keeps every stage and its time);
- ``"bar"``: one bar over the stages, its label the stage under way (drawn only on a
  terminal: see ``--progress``);

or not at all (``None``). A stage that raises is not reported as done.

Examples
--------
>>> with Stages(None) as stages:
...     with stages("scoring"):
...         pass
>>> stages.done
['scoring']
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

STYLES = ("lines", "bar", None)


class Stages:
    """Stages shown as ``style`` says (see the module); ``total`` stages expected (the bar's
    length; the lines need none)."""

    def __init__(
        self, style: str | None = "lines", total: int | None = None, file: IO | None = None
    ):
        if style not in STYLES:
            raise ValueError(f"unknown stage style {style!r}; use one of {STYLES}")
        self.style = style
        self.file = file
        self.done: list[str] = []
        self._bar = None
        if style == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                unit="stage",
                file=self._out,
                dynamic_ncols=True,
                bar_format="{desc} {n}/{total} stages [{elapsed}]",
            )

    @property
    def _out(self) -> IO:
        return self.file or sys.stderr

    def say(self, line: str) -> None:
        """A line on the stages' stream (only in the ``lines`` style)."""
        if self.style == "lines":
            print(line, file=self._out, flush=True)

    @contextmanager
    def __call__(self, title: str) -> Iterator[Stages]:
        """One stage: shown as begun on entry, as done (with its time) when the block ends
        without an error."""
        t0 = time.perf_counter()
        self.say(f"==> {title}")
        if self._bar is not None:
            self._bar.set_description(title)
        yield self
        self.done.append(title)
        self.say(f"    done in {time.perf_counter() - t0:.0f} s")
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        """End the display (the bar says ``done``); further stages show nothing."""
        if self._bar is not None:
            self._bar.set_description("done")
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
