"""Atomic output: ``write_dir_atomically`` and ``write_json`` as readers and rival writers see them."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tuner.core import files
from tuner.core.files import write_dir_atomically, write_json

FILES = ("model.bin", "artifact.json", "report.json", "best_config.json")


def fill_with(generation: int):
    def fill(tmp: Path) -> None:
        for name in FILES:
            write_json(tmp / name, {"generation": generation, "payload": "x" * 4096})

    return fill


def generations(folder: Path) -> set[int]:
    return {json.loads((folder / name).read_text())["generation"] for name in FILES}


def test_a_new_folder_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "study" / "best"
    write_dir_atomically(target, fill_with(1))
    write_dir_atomically(target, fill_with(2))
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES)
    assert generations(target) == {2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["best"]  # no temporary folder left


def test_a_fill_that_fails_leaves_the_old_folder_as_it_was(tmp_path):
    target = tmp_path / "best"
    write_dir_atomically(target, fill_with(1))

    def half_then_fail(tmp: Path) -> None:
        write_json(tmp / "report.json", {"generation": 2})
        raise KeyboardInterrupt  # Ctrl-C in the middle of an export

    with pytest.raises(KeyboardInterrupt):
        write_dir_atomically(target, half_then_fail)
    assert generations(target) == {1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_a_reader_always_finds_a_complete_folder(tmp_path):
    target = tmp_path / "best"
    write_dir_atomically(target, fill_with(0))
    done = threading.Event()
    misses: list[str] = []

    def read() -> None:
        while not done.is_set():
            # The manifest is what load_optimized looks for first: it must always be there.
            if not (target / "artifact.json").is_file():
                misses.append("missing")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for generation in range(1, 150):
            write_dir_atomically(target, fill_with(generation))
    finally:
        done.set()
        reader.join()
    assert misses == []
    assert generations(target) == {149}


def test_rival_writers_of_one_folder_never_collide(tmp_path):
    target = tmp_path / "best"
    errors: list[BaseException] = []

    def write(first: int) -> None:
        try:
            for generation in range(first, first + 40):
                write_dir_atomically(target, fill_with(generation))
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    writers = [threading.Thread(target=write, args=(k * 1000,)) for k in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert errors == []
    assert len(generations(target)) == 1  # one writer's whole folder, not a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_the_swap_is_one_exchange_on_linux(tmp_path):
    if not files.sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux's")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b").mkdir()
    assert files._exchange(tmp_path / "a", tmp_path / "b") is True
    assert (tmp_path / "b" / "x").read_text() == "a" and not any((tmp_path / "a").iterdir())


class Unwritable:
    def __str__(self) -> str:
        raise TypeError("cannot be written")


def test_a_failed_write_json_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    write_json(tmp_path / "report.json", {"status": "ok"})
    with pytest.raises(TypeError, match="cannot be written"):
        write_json(tmp_path / "report.json", {"status": "new", "bad": Unwritable()})
    assert json.loads((tmp_path / "report.json").read_text()) == {"status": "ok"}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_folders_left_by_a_killed_writer_are_removed_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    left = tmp_path / f".best.tmp-{dead_pid}-0123abcd"
    left.mkdir()
    (left / "model.bin").write_bytes(b"half an export")
    live = tmp_path / ".best.tmp-1-0123abcd"  # pid 1 always runs: a writer still at work
    live.mkdir()
    write_dir_atomically(tmp_path / "best", fill_with(1))
    assert not left.exists() and live.is_dir()
    assert generations(tmp_path / "best") == {1}
