"""The client commands as a user meets them: one sentence and a named exit code, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.support.processes import fap_argv, free_port

from fap.errors import EXIT_AUTH, EXIT_INPUT, EXIT_JOBS_FAILED, EXIT_UNREACHABLE, EXIT_USAGE


def fap(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fap_argv(*args),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
    )


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def test_a_missing_file_is_one_sentence_and_exit_3(fap_home: Path, tmp_path: Path) -> None:
    done = fap("upload", "missing.txt", "--server", "http://127.0.0.1:1", cwd=tmp_path)
    assert done.returncode == EXIT_INPUT
    assert done.stderr.splitlines() == ["error: missing.txt does not exist."]


def test_a_directory_is_refused_with_a_hint(fap_home: Path, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    done = fap("upload", "folder", cwd=tmp_path)
    assert done.returncode == EXIT_INPUT
    [line] = error_lines(done)
    assert "folder is a directory" in line
    assert "--recursive" in line and "fap watch" in line


def test_an_unreadable_file_is_refused(fap_home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("no\n")
    secret.chmod(0)
    # Root reads a chmod 000 file all the same; without the DAC capabilities it is refused as a
    # user would be.
    prefix = (
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    )
    done = subprocess.run(
        [*prefix, *fap_argv("upload", "secret.txt")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == EXIT_INPUT
    [line] = error_lines(done)
    assert "cannot be read" in line


def test_without_a_token_the_exit_is_4_and_says_to_set_fap_token(
    fap_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    done = fap("upload", "a.txt", "--server", "http://127.0.0.1:1", cwd=tmp_path)
    assert done.returncode == EXIT_AUTH
    [line] = error_lines(done)
    assert "FAP_TOKEN" in line


def test_a_server_that_does_not_answer_is_exit_5_after_the_retry_budget(
    fap_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    server = f"http://127.0.0.1:{free_port()}"
    done = fap(
        "upload",
        "a.txt",
        "--server",
        server,
        "--retry-for",
        "1",
        cwd=tmp_path,
        env={"FAP_TOKEN": "fap_user_x"},
    )
    assert done.returncode == EXIT_UNREACHABLE
    [line] = error_lines(done)
    assert f"The server at {server} did not answer" in line


def test_good_files_go_and_bad_ones_are_each_reported_as_json(
    fap_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    done = fap(
        "upload",
        "gone.txt",
        "a.txt",
        "--json",
        "--server",
        f"http://127.0.0.1:{free_port()}",
        "--retry-for",
        "0.5",
        cwd=tmp_path,
        env={"FAP_TOKEN": "fap_user_x"},
    )
    assert done.returncode == EXIT_UNREACHABLE  # a.txt was tried: the server is away
    assert '"file": "gone.txt"' in done.stdout
    assert '"status": "failed"' in done.stdout
    assert len(error_lines(done)) == 2


def test_no_server_known_is_a_clear_error(fap_home: Path, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    done = fap("upload", "a.txt", cwd=tmp_path)
    assert done.returncode == EXIT_INPUT
    [line] = error_lines(done)
    assert "--server" in line and "FAP_SERVER" in line


def test_two_files_with_one_name_would_share_a_result_so_the_second_is_refused(
    fap_home: Path, tmp_path: Path
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.txt").write_text(folder)
    done = fap(
        "upload",
        "a/x.txt",
        "b/x.txt",
        "--server",
        "http://127.0.0.1:1",
        "--retry-for",
        "0",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "error: b/x.txt: another file named x.txt" in error_lines(done)[0]


def test_a_malformed_engine_is_a_usage_error(fap_home: Path, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    done = fap("upload", "a.txt", "--engine", "size", cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert "NAME@VERSION" in done.stderr


@pytest.mark.parametrize("flag", ["--bwlimit", "--limit-rate"])
@pytest.mark.parametrize("rate", ["fast", "0", "-8M"])
def test_a_rate_that_is_not_one_is_a_usage_error(
    fap_home: Path, tmp_path: Path, flag: str, rate: str
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    done = fap("upload", "a.txt", flag, rate, cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert "Traceback" not in done.stderr
    assert ("is not a rate in bytes per second" in done.stderr) or (
        "must be above zero" in done.stderr
    )


def test_watch_needs_a_directory(fap_home: Path, tmp_path: Path) -> None:
    done = fap("watch", "nowhere", "--once", cwd=tmp_path)
    assert done.returncode == EXIT_INPUT
    [line] = error_lines(done)
    assert "nowhere does not exist" in line


def test_keys_export_prints_the_identity_and_warns_on_stderr(
    fap_home: Path, tmp_path: Path
) -> None:
    first = fap("keys", "export", cwd=tmp_path)
    second = fap("keys", "export", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("AGE-SECRET-KEY-1")
    assert first.stdout == second.stdout, "the device keeps its key"
    assert "secret key" in first.stderr
    assert "AGE-SECRET-KEY" not in first.stderr


def test_recursive_on_a_directory_with_nothing_to_send_is_exit_3(
    fap_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "build" / ".cache").mkdir(parents=True)
    (tmp_path / "build" / "scratch.tmp").write_text("skipped\n")
    done = fap("upload", "--recursive", "build", cwd=tmp_path)
    assert done.returncode == EXIT_INPUT
    assert error_lines(done) == [
        "error: build holds no file to upload (hidden and temporary files are skipped)."
    ]


def test_two_directories_whose_results_would_collide_send_the_first_alone(
    fap_home: Path, tmp_path: Path
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder / "sub").mkdir(parents=True)
        (tmp_path / folder / "sub" / "x.txt").write_text(folder)
    done = fap("upload", "-r", "a", "b", "--server", "http://127.0.0.1:1", cwd=tmp_path)
    assert done.returncode == EXIT_AUTH  # a/sub/x.txt went on, to a server that wants a token
    assert error_lines(done)[0].startswith("error: b/sub/x.txt: another file named sub/x.txt")


def test_a_list_on_stdin_is_taken_as_if_named_on_the_command_line(
    fap_home: Path, tmp_path: Path
) -> None:
    done = fap("upload", "-", cwd=tmp_path, stdin="gone.txt\n\n   \nnowhere/else.txt\n")
    assert done.returncode == EXIT_INPUT
    assert error_lines(done) == [
        "error: gone.txt does not exist.",
        "error: nowhere/else.txt does not exist.",
    ]


def test_a_nul_separated_list_keeps_names_with_newlines_whole(
    fap_home: Path, tmp_path: Path
) -> None:
    done = fap("upload", "-", "--null", cwd=tmp_path, stdin="two\nlines.txt\0\0")
    assert done.returncode == EXIT_INPUT
    assert done.stderr == "error: two\nlines.txt does not exist.\n"


def test_an_empty_list_on_stdin_is_exit_3(fap_home: Path, tmp_path: Path) -> None:
    done = fap("upload", "-", cwd=tmp_path, stdin="\n\n")
    assert done.returncode == EXIT_INPUT
    [line] = error_lines(done)
    assert "No files were named on stdin" in line


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("-", "a.txt"), "give it alone"),
        (("a.txt", "--null"), "give - as the only FILE"),
        (("a.txt", "-0"), "give - as the only FILE"),
    ],
)
def test_dash_and_null_are_for_stdin_alone(
    fap_home: Path, tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    done = fap("upload", *args, cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert "Traceback" not in done.stderr
    assert said in done.stderr


def test_with_fail_fast_a_file_that_cannot_be_read_stops_the_upload_before_anything_is_sent(
    fap_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    # A server that is not there: any attempt to send would end in exit 5.
    done = fap(
        "upload",
        "a.txt",
        "gone.txt",
        "--fail-fast",
        "--json",
        "--server",
        f"http://127.0.0.1:{free_port()}",
        cwd=tmp_path,
        env={"FAP_TOKEN": "fap_user_x"},
    )
    assert done.returncode == EXIT_JOBS_FAILED
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(line["file"], line["status"]) for line in lines] == [
        ("gone.txt", "failed"),
        ("a.txt", "failed"),
    ]
    assert lines[1]["error"] == "Not sent: stopped at the first failure (--fail-fast)."
    assert error_lines(done)[-1] == (
        "error: 1 of 2 files cannot be sent, so with --fail-fast none was sent."
    )


@pytest.mark.parametrize(
    ("timetable", "said"),
    [
        ("08:00,4M 25:00,off", "25:00 is not a time of day"),
        ("08:00,4M 18:00,fast", "'fast' is not a rate in bytes per second"),
        ("08:00 4M", "is not a timetable entry: write HH:MM,RATE"),
    ],
)
def test_a_bandwidth_timetable_with_a_mistake_is_a_usage_error(
    fap_home: Path, tmp_path: Path, timetable: str, said: str
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    for command in (("upload", "a.txt"), ("watch", ".", "--once")):
        done = fap(*command, "--bwlimit", timetable, cwd=tmp_path)
        assert done.returncode == EXIT_USAGE, command
        assert "Traceback" not in done.stderr
        assert said in done.stderr
