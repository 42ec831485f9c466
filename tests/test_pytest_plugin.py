"""The pytest plugin: the documented example replays its recording, catches a changed client,
and records the fixture again with --wsproxy-record, VCR-style."""

from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "docs" / "examples"


def copy_example(pytester) -> Path:
    shutil.copy(EXAMPLES / "test_chat_client.py", pytester.path / "test_chat_client.py")
    (pytester.path / "fixtures").mkdir()
    shutil.copy(EXAMPLES / "fixtures" / "alice_says_hello.jsonl", pytester.path / "fixtures")
    return pytester.path / "test_chat_client.py"


def test_the_documented_example_passes_against_its_recording(pytester) -> None:
    copy_example(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_client_that_changed_fails_with_the_divergence(pytester) -> None:
    test_file = copy_example(pytester)
    test_file.write_text(test_file.read_text().replace('"are you there?"', '"still there?"'))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, errors=1)  # the client sees replay_mismatch; the fixture reports why
    result.stdout.fnmatch_lines(["*the client diverged from the recording alice_says_hello.jsonl*",
                                 "*mismatch*expected request new*are you there?*"])


def test_a_missing_recording_says_how_to_make_it(pytester) -> None:
    test_file = copy_example(pytester)
    (pytester.path / "fixtures" / "alice_says_hello.jsonl").unlink()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", str(test_file))
    result.stdout.fnmatch_lines(["*no recording*alice_says_hello.jsonl: record it once with pytest --wsproxy-record=*"])


async def test_wsproxy_record_records_the_fixture_again(pytester, chat_server) -> None:
    import asyncio
    copy_example(pytester)
    recording = pytester.path / "fixtures" / "alice_says_hello.jsonl"
    recording.unlink()
    # the inner pytest talks to chat_server, which runs on this test's event loop: run it in a thread
    result = await asyncio.to_thread(pytester.runpytest_subprocess, "-p", "no:cacheprovider",
                                     f"--wsproxy-record={chat_server.url}")
    result.assert_outcomes(passed=1)
    assert '"label":"alice_says_hello"' in recording.read_text()
    replayed = await asyncio.to_thread(pytester.runpytest_subprocess, "-p", "no:cacheprovider")
    replayed.assert_outcomes(passed=1)
