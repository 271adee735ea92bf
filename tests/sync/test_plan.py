import datetime as dt

from p2psync.protocol.fileinfo import BlockInfo, FileInfo, FileType
from p2psync.sync.plan import (
    conflict_copies_to_remove,
    conflict_copy_name,
    is_conflict_copy,
    mass_delete_exceeded,
    pull_order_key,
    same_content,
    split_extension,
)

WHEN = dt.datetime(2025, 3, 1, 14, 22, 33)


def test_conflict_copy_name_like_syncthing() -> None:
    assert (
        conflict_copy_name("report.docx", WHEN, "P56IOI7")
        == "report.sync-conflict-20250301-142233-P56IOI7.docx"
    )
    assert (
        conflict_copy_name("a/b/archive.tar.gz", WHEN, "P56IOI7")
        == "a/b/archive.tar.sync-conflict-20250301-142233-P56IOI7.gz"
    )
    assert (
        conflict_copy_name("Makefile", WHEN, "ABCDEFG")
        == "Makefile.sync-conflict-20250301-142233-ABCDEFG"
    )


def test_dotfiles_keep_their_name() -> None:
    assert split_extension(".bashrc") == (".bashrc", "")
    assert (
        conflict_copy_name("d/.bashrc", WHEN, "ABCDEFG")
        == "d/.bashrc.sync-conflict-20250301-142233-ABCDEFG"
    )


def test_is_conflict_copy() -> None:
    assert is_conflict_copy("x/report.sync-conflict-20250301-142233-P56IOI7.docx")
    assert not is_conflict_copy("report.docx")
    assert not is_conflict_copy("sync-conflict-notes.txt")


def test_prune_conflict_copies_keeps_newest() -> None:
    names = [
        conflict_copy_name("d/f.txt", WHEN + dt.timedelta(seconds=i), "ABCDEFG") for i in range(5)
    ]
    others = ["d/g.sync-conflict-20250301-142233-ABCDEFG.txt", "e/" + names[0].split("/")[1]]
    assert conflict_copies_to_remove("d/f.txt", names + others, 2) == names[:3]
    assert conflict_copies_to_remove("d/f.txt", names, -1) == []
    assert conflict_copies_to_remove("d/f.txt", names, 0) == names


def test_mass_delete_guard() -> None:
    assert not mass_delete_exceeded(50, 100, 0.5, 5)
    assert mass_delete_exceeded(51, 100, 0.5, 5)
    assert mass_delete_exceeded(10, 12, 0.5, 5)  # a small folder losing most of its files
    assert not mass_delete_exceeded(4, 6, 0.5, 5)  # a few deletions in a tiny folder pass
    assert not mass_delete_exceeded(5, 12, 0.5, 5)  # not most of it
    assert mass_delete_exceeded(1, 1, 0.5, 0)  # the floor is at least one file


def test_same_content_and_order() -> None:
    b = (BlockInfo(0, 3, b"h" * 32),)
    a = FileInfo("a", size=3, blocks=b)
    assert same_content(a, a.with_(name="b", modified_ns=5))
    assert not same_content(a, a.with_(blocks=(BlockInfo(0, 3, b"g" * 32),)))
    items = [
        FileInfo("x/y", deleted=True),
        FileInfo("x", type=FileType.DIRECTORY),
        FileInfo("f", size=3, blocks=b),
        FileInfo("x/z", type=FileType.DIRECTORY),
        FileInfo("x/y/z", deleted=True),
    ]
    assert [i.name for i in sorted(items, key=pull_order_key)] == ["x", "x/z", "f", "x/y/z", "x/y"]
