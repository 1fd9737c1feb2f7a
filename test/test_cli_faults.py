"""The event-clip CLI on bad arguments: -v on either side of the sub-command, every number checked to a finite,
sensible range with a one-line argparse error (exit 2, no traceback), and WindowConfig refusing the same values."""

from __future__ import annotations

import argparse
import math

import pytest

from event_clip_ros.cli import build_parser, main
from event_clip_ros.events.readers.base import EventFileError
from event_clip_ros.events.windows import MAX_WINDOW_EVENTS, MAX_WINDOW_US, WindowConfig


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "shapes.raw"
    assert main(["simulate", str(path), "--sensor-size", "32x24", "--duration-ms", "60", "--seed", "1"]) == 0
    return path


def _parsers(parser: argparse.ArgumentParser, name: str = "event-clip"):
    """(name, parser) of the program and of every sub-command, nested ones included."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def _numeric_options():
    """(command, option, type) of every option whose type parses a number."""
    for name, parser in _parsers(build_parser()):
        for action in parser._actions:
            if getattr(action.type, "__name__", None) in ("int", "float", "number"):
                yield name, action.option_strings[0] if action.option_strings else action.dest, action.type


NUMERIC = list(_numeric_options())


# ------------------------------------------------------------------ -v
@pytest.mark.parametrize("argv", [["-v", "inspect"], ["inspect", "-v"], ["inspect", "--verbose"]])
def test_verbose_before_or_after_the_sub_command(recording, argv, capsys):
    assert main([*argv, str(recording)]) == 0
    assert "evt3" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["-v", "inspect"], ["inspect", "-v"]])
def test_verbose_shows_the_traceback_wherever_it_is_given(tmp_path, argv):
    with pytest.raises(EventFileError, match="no such file"):  # the error itself, not the one-line message
        main([*argv, str(tmp_path / "missing.raw")])


def test_without_verbose_the_error_is_one_line_with_a_true_hint(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing.raw")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("event-clip inspect: error: ") and "(-v shows the traceback)" in err[0]


def test_verbose_reaches_nested_sub_commands():
    parser = build_parser()
    for argv in (["retrieve", "-v", "build", "idx"], ["retrieve", "build", "idx", "-v"],
                 ["-v", "retrieve", "build", "idx"]):
        assert parser.parse_args(argv).verbose is True
    assert parser.parse_args(["retrieve", "build", "idx"]).verbose is False


# ------------------------------------------------------------------ numbers
def test_every_number_is_checked():
    """No sub-command takes a bare int or float (NaN, inf, 1e300 and negatives would pass)."""
    bare = [(name, option) for name, parser in _parsers(build_parser()) for action in parser._actions
            if action.type in (int, float) for option in action.option_strings[:1]]
    assert bare == []
    assert len(NUMERIC) > 40


@pytest.mark.parametrize("command, option, parse", NUMERIC, ids=[f"{c[11:]} {o}" for c, o, _ in NUMERIC])
def test_non_finite_and_absurd_numbers_are_refused(command, option, parse):
    for text in ("nan", "inf", "-inf", "1e300", "-1e300", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected .*got {text!r}"):
            parse(text)


@pytest.mark.parametrize("argv, option, expected", [
    (["classify", "R", "--labels", "a", "--window-ms", "inf"], "--window-ms", "a finite number in [0.001, 3600000]"),
    (["classify", "R", "--labels", "a", "--hop-ms", "inf"], "--hop-ms", "a finite number"),
    (["render", "R", "--out", "o", "--window-ms", "1e300"], "--window-ms", "3600000]"),
    (["render", "R", "--out", "o", "--window-ms", "nan"], "--window-ms", "a finite number"),
    (["render", "R", "--out", "o", "--window-ms", "0"], "--window-ms", "[0.001,"),
    (["render", "R", "--out", "o", "--hop-ms", "-5"], "--hop-ms", "[0.001,"),
    (["render", "R", "--out", "o", "--event-count", "0"], "--event-count", f"[1, {MAX_WINDOW_EVENTS}]"),
    (["render", "R", "--out", "o", "--min-events", "-1"], "--min-events", "an integer"),
    (["render", "R", "--out", "o", "--clamp", "0"], "--clamp", "(0,"),
    (["render", "R", "--out", "o", "--sensor-size", "0x24"], "--sensor-size", "WIDTHxHEIGHT"),
    (["classify", "R", "--labels", "a", "--batch-size", "0"], "--batch-size", "[1, 65536]"),
    (["classify", "R", "--labels", "a", "--top-k", "0"], "--top-k", "an integer in [1, 1000]"),
    (["classify", "R", "--labels", "a", "--alpha", "1.5"], "--alpha", "[0, 1]"),
    (["anomaly", "R", "--threshold", "nan"], "--threshold", "[0, 1]"),
    (["anomaly", "R", "--capacity", "1"], "--capacity", "[2,"),
    (["simulate", "o.raw", "--duration-ms", "-1"], "--duration-ms", "a finite number"),
    (["simulate", "o.raw", "--seed", "-1"], "--seed", "an integer"),
    (["evaluate", "B", "--out", "o", "--window-ms", "inf"], "--window-ms", "[0.01, 60000]"),  # the node's range
    (["evaluate", "B", "--out", "o", "--top-k", "5000"], "--top-k", "[1, 1000]"),
    (["evaluate", "B", "--out", "o", "--batch-size", "0"], "--batch-size", "[1, 65536]"),
    (["evaluate", "B", "--out", "o", "--max-problem-rate", "2"], "--max-problem-rate", "[0, 1]"),
    (["evaluate", "B", "--out", "o", "--rate", "0"], "--rate", "(0,"),
    (["to-bag", "I", "O", "--packet-ms", "inf"], "--packet-ms", "a finite number"),
    (["replay", "B", "--rate", "-1"], "--rate", "(0,"),
    (["record", "O", "--topic", "/t", "--max-messages", "0"], "--max-messages", "an integer >= 1"),
    (["video2events", "V", "O", "--stack", "1"], "--stack", "[2, 4096]"),
    (["video-anomaly", "V", "--diff-threshold", "256"], "--diff-threshold", "[0, 255]"),
])
def test_bad_numbers_are_one_line_argparse_errors(argv, option, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"event-clip {argv[0]}: error: argument {option}") and expected in last


def test_good_numbers_still_parse():
    args = build_parser().parse_args(["classify", "R", "--labels", "a", "--window-ms", "2.5", "--hop-ms", "1",
                                      "--batch-size", "8", "--top-k", "3", "--alpha", "0"])
    assert (args.window_ms, args.hop_ms, args.batch_size, args.top_k, args.alpha) == (2.5, 1.0, 8, 3, 0.0)
    args = build_parser().parse_args(["evaluate", "B", "--out", "o", "--hop-ms", "0", "--event-count", "0"])
    assert args.hop_ms == 0.0 and args.event_count == 0  # the node's "0: unset"


# ------------------------------------------------------------------ WindowConfig (library users)
@pytest.mark.parametrize("duration_ms, hop_ms", [
    (math.inf, None), (math.nan, None), (-math.inf, None), (50.0, math.inf), (50.0, math.nan), ("50", None),
])
def test_window_config_refuses_non_finite_milliseconds(duration_ms, hop_ms):
    with pytest.raises(ValueError, match="finite number of milliseconds"):
        WindowConfig.by_duration_ms(duration_ms, hop_ms)


@pytest.mark.parametrize("kwargs", [
    {"duration_us": MAX_WINDOW_US + 1},
    {"duration_us": 1_000, "hop_us": MAX_WINDOW_US + 1},
    {"event_count": MAX_WINDOW_EVENTS + 1},
    {"duration_us": 1_000, "min_events": MAX_WINDOW_EVENTS + 1},
    {"duration_us": 1_000, "max_events": MAX_WINDOW_EVENTS + 1},
])
def test_window_config_refuses_absurd_sizes(kwargs):
    with pytest.raises(ValueError, match="must be <="):
        WindowConfig(**kwargs)


def test_window_config_limits_are_reachable():
    assert WindowConfig.by_duration_ms(MAX_WINDOW_US / 1000).duration_us == MAX_WINDOW_US
    assert WindowConfig(event_count=MAX_WINDOW_EVENTS, min_events=MAX_WINDOW_EVENTS).event_count == MAX_WINDOW_EVENTS
    with pytest.raises(ValueError, match="must be <="):
        WindowConfig.by_duration_ms(1e300)
