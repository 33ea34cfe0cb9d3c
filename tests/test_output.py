"""Output modes: what goes to stdout and stderr."""

from __future__ import annotations

import io
import json

import pytest

from flux2_cli.output import Output, print_rows


def streams() -> tuple[io.StringIO, io.StringIO]:
    return io.StringIO(), io.StringIO()


def test_human_results_on_stdout_notices_on_stderr() -> None:
    out, err = streams()
    output = Output(stdout=out, stderr=err, live=False)
    output.result("a.png")
    output.info("Submitted task t1.")
    assert out.getvalue() == "a.png\n"
    assert err.getvalue() == "Submitted task t1.\n"


def test_json_mode_prints_one_document_and_no_result_lines() -> None:
    out, err = streams()
    output = Output(json_mode=True, stdout=out, stderr=err, live=False)
    output.result("a.png")
    output.document({"task_id": "t1"})
    assert json.loads(out.getvalue()) == {"task_id": "t1"}


def test_quiet_keeps_errors_only() -> None:
    out, err = streams()
    output = Output(quiet=True, stdout=out, stderr=err, live=False)
    output.info("notice")
    output.warn("careful")
    output.error("broken", ["try this"])
    assert err.getvalue() == "error: broken\n  try this\n"


def test_plain_status_lines_only_on_change() -> None:
    out, err = streams()
    output = Output(stdout=out, stderr=err, live=False)
    with output.status("task t1") as show:
        show("queued")
        show("queued")
        show("running")
    lines = err.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["task t1: queued", "task t1: running"]
    assert "\r" not in err.getvalue()


def test_error_text_is_scrubbed_of_bearer_tokens() -> None:
    out, err = streams()
    Output(stdout=out, stderr=err, live=False).error("sent Authorization: Bearer abc123")
    assert "abc123" not in err.getvalue()


def test_live_is_off_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("CI", "true")
    assert not Output(stderr=Tty()).live
    monkeypatch.delenv("CI")
    assert Output(stderr=Tty()).live


# -- terminal escapes in server text (reliability row 61) -----------------------------------

HOSTILE = "boom\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2K\rfake ok\x9b31m\u202eevil"


class Tty(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_control_characters_are_shown_inert_on_stderr_and_stdout() -> None:
    out, err = streams()
    output = Output(stdout=out, stderr=err, live=False)
    output.error(f"task failed: {HOSTILE}")
    output.result(HOSTILE)
    for text in (out.getvalue(), err.getvalue()):
        assert not any(char in text for char in "\x1b\x07\r\x9b\u202e")
        assert "\\x1b]52;c;" in text and "\\x1b[2K" in text and "\\x0d" in text
        assert "\\x9b" in text and "\\u202e" in text


def test_tables_and_status_lines_neutralise_too() -> None:
    out, err = streams()
    output = Output(stdout=out, stderr=err, live=False)
    print_rows(output, ["task", "prompt"], [["t1", HOSTILE]])  # batch's plan, history
    with output.status("task t1") as show:
        show(HOSTILE)
    assert "\x1b" not in out.getvalue() and "\x1b" not in err.getvalue()
    assert "\\x1b" in out.getvalue() and "\\x1b" in err.getvalue()


def test_json_keeps_every_control_character_escaped() -> None:
    out, _ = streams()
    Output(json_mode=True, stdout=out, live=False).document({"message": HOSTILE})
    text = out.getvalue()
    assert not any(char in text for char in "\x1b\x07\r\x9b\u202e")
    assert json.loads(text) == {"message": HOSTILE}  # nothing lost: escaped, not removed
    out, _ = streams()
    Output(json_mode=True, stdout=out, live=False).json_line({"message": HOSTILE})
    assert "\x9b" not in out.getvalue() and json.loads(out.getvalue())["message"] == HOSTILE


def test_newlines_and_tabs_of_flux2_own_text_are_kept() -> None:
    out, err = streams()
    Output(stdout=out, stderr=err, live=False).info("a\tb\nc")
    assert err.getvalue() == "a\tb\nc\n"


# -- colour and flags ------------------------------------------------------------------------


def test_error_label_is_red_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = Tty()
    Output(stderr=err, quiet=True).error("broken")
    assert err.getvalue() == "\x1b[1;31merror:\x1b[0m broken\n"


def test_no_color_keeps_the_error_label_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    err = Tty()
    Output(stderr=err).error("broken")
    assert err.getvalue() == "error: broken\n"


def test_error_label_is_plain_when_stderr_is_not_a_terminal() -> None:
    out, err = streams()
    Output(stdout=out, stderr=err).error("broken")
    assert err.getvalue() == "error: broken\n"


def test_quiet_and_verbose_together_are_refused() -> None:
    from flux2_cli.errors import UsageError

    with pytest.raises(UsageError, match="--quiet and --verbose"):
        Output(quiet=True, verbose=True)


@pytest.mark.parametrize(
    ("credits", "usd", "shown"),
    [
        (4.5, 0.045, "4.5 credits ≈ $0.05"),  # half up, not the float's $0.04
        (5, 0.05, "5 credits ≈ $0.05"),
        (117, 1.17, "117 credits ≈ $1.17"),
        (0.333333, None, "0.33 credits"),
        (None, 0.004, "< $0.01"),
        (None, None, "cost not published"),
    ],
)
def test_costs_are_rounded_one_way(credits: float | None, usd: float | None, shown: str) -> None:
    from flux2_cli.output import format_cost

    assert format_cost(credits, usd) == shown
    assert format_cost(credits, usd, simulated=True) == f"{shown} (simulated; nothing charged)"


def test_row59_stdout_that_cannot_be_written_is_a_clear_exit_8() -> None:
    import errno

    from flux2_cli.errors import DownloadError

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    output = Output(stdout=Full(), stderr=io.StringIO())
    with pytest.raises(DownloadError) as caught:
        output.result("out/fox.png")
    assert caught.value.exit_code == 8
    assert caught.value.message == "cannot write to stdout: No space left on device"
    assert "Files already saved are kept" in caught.value.hints[0]
    output.result("out/whale.png")  # later results are not written again, and do not raise


def test_under_github_actions_server_text_cannot_become_a_workflow_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, err = streams()
    output = Output(stdout=out, stderr=err, live=False, quiet=True)
    hostile = "bad prompt\n::add-mask::x\r  ::error::fake"
    output.error(hostile)
    assert "\n::" in err.getvalue()  # outside GitHub Actions the text is left alone
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    err.seek(0)
    err.truncate()
    output.error(hostile)
    output.command("::error file=m.jsonl,line=2::#2: failed")
    lines = err.getvalue().replace("\r", "\n").splitlines()
    assert [line for line in lines if line.lstrip().startswith("::")] == [
        "::error file=m.jsonl,line=2::#2: failed"
    ]
    assert "> ::add-mask::x" in err.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rows_on_a_terminal_never_draw_control_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flux2_cli.output import print_rows

    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Terminal()
    output = Output(stdout=out, stderr=io.StringIO(), live=False)
    print_rows(output, ["task", "prompt"], [["t1", "a \x1b[2Jred\u202e fox"]])
    assert "\x1b" not in out.getvalue() and "\u202e" not in out.getvalue()
    assert "a \\x1b[2Jred\\u202e fox" in out.getvalue()


def test_rows_piped_are_tab_separated_one_record_a_line() -> None:
    from flux2_cli.output import print_rows

    out = io.StringIO()
    output = Output(stdout=out, stderr=io.StringIO(), live=False)
    print_rows(output, ["task", "prompt"], [["t1", "a red\nfox\tin snow"], ["t2", "-"]])
    assert out.getvalue() == "t1\ta red fox in snow\nt2\t-\n"


def test_row60_stdout_is_scrubbed_of_the_commands_keys_too(sentinel_key: str) -> None:
    out = io.StringIO()
    output = Output(stdout=out, stderr=io.StringIO())
    output.secrets.add(sentinel_key)
    output.json_line({"error": {"message": f"redirect to https://x.example/?k={sentinel_key}"}})
    assert sentinel_key not in out.getvalue() and "k=***" in out.getvalue()


def test_rows_take_back_the_room_a_left_out_column_frees(monkeypatch: pytest.MonkeyPatch) -> None:
    # history at 80 columns left out the saved paths and the provider, yet still cut the prompt
    # to 12 characters ("a red fox i…") with part of the line empty.
    from flux2_cli.output import print_rows

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Terminal()
    output = Output(stdout=out, stderr=io.StringIO(), live=False)
    task = "sbx820971d572b9481fb6d6_flux2"
    saved = "/home/someone/pictures/a-red-fox-in-snow-820971d5.png"
    short, long = "a red fox in snow", "a red fox in snow on a hill at dawn, seen from far away"
    print_rows(
        output,
        ["task", "provider", "status", "submitted", "expires", "saved", "prompt"],
        [
            [task, "apiinone", "succeeded", "3 min ago", "in 23 h", saved, short],
            [task, "apiinone", "succeeded", "3 min ago", "in 23 h", saved, long],
        ],
        shrink=(6,),
        shrink_left=(5,),
        droppable=(5, 1),
    )
    lines = out.getvalue().splitlines()
    assert "saved" not in lines[0] and "provider" not in lines[0]
    assert lines[1].endswith(short)  # whole again: it fits once the columns are left out
    assert len(lines[2]) == 80 and lines[2].endswith("…")  # the long one uses every column
