"""The one stage-progress helper: lines with each stage's time (``chromestore run``), a bar
over the stages (``chromestore analyze``), or nothing."""

from __future__ import annotations

import io

import pytest

from chromestore.stages import Stages


def test_stages__lines_say_each_stage_and_its_time_but_not_a_failed_one():
    out = io.StringIO()
    stages = Stages("lines", file=out)
    with stages("simulate"):
        pass
    with pytest.raises(RuntimeError), stages("train"):
        raise RuntimeError("boom")
    assert out.getvalue().splitlines() == ["==> simulate", "    done in 0 s", "==> train"]
    assert stages.done == ["simulate"]


def test_stages__bar_counts_the_stages_and_ends_done():
    out = io.StringIO()
    with Stages("bar", total=2, file=out) as stages:
        with stages("scoring"):
            assert "scoring:  0/2 stages" in out.getvalue().split("\r")[-1]
        with stages("writing the report"):
            pass
    assert "done:  2/2 stages" in out.getvalue().split("\r")[-1]
    assert "==>" not in out.getvalue()


def test_stages__none_shows_nothing_and_a_bad_style_is_refused(capsys):
    with Stages(None) as stages, stages("quiet"):
        pass
    assert stages.done == ["quiet"]
    assert capsys.readouterr() == ("", "")
    with pytest.raises(ValueError, match="unknown stage style 'dots'"):
        Stages("dots")
