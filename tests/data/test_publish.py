"""The one atomic-publish helper: all or nothing, never clobbering without overwrite."""

import pytest

from unrolled.data.publish import atomic_path, write_atomic


def test_written_then_renamed_into_place(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.txt.")
        tmp.write_text("done")
        assert not target.exists()  # nothing under the final name while writing
    assert target.read_text() == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_atomic(tmp_path / "out.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_without_overwrite_an_existing_file_is_kept(tmp_path):
    target = write_atomic(tmp_path / "out.txt", "mine")
    with pytest.raises(FileExistsError, match=r"out\.txt: exists; pass overwrite=True"):
        write_atomic(target, "theirs", overwrite=False)
    with pytest.raises(FileExistsError, match=r"new\.txt: exists; pass overwrite=true"):
        with atomic_path(tmp_path / "new.txt", overwrite=False, hint="pass overwrite=true") as tmp:
            tmp.write_text("theirs")
            target.rename(tmp_path / "new.txt")  # someone else's file appears meanwhile
    assert (tmp_path / "new.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt"]
    assert write_atomic(tmp_path / "new.txt", b"\x00", overwrite=True).read_bytes() == b"\x00"
