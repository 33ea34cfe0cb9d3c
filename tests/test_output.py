"""Output modes: what goes to stdout and stderr."""

from __future__ import annotations

import io
import json

import pytest

from flux2_cli.output import Output


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
