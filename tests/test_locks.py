import pytest

from pipeline import locks


def test_a_held_lock_is_refused_with_its_holder_and_released_after(tmp_path):
    path = tmp_path / ".lock"
    with locks.hold(path, what="the run 'x'", hint="use another --name"):
        with pytest.raises(locks.LockedError, match=r"Expected no other process to use the run 'x'\. "
                                                    r"Received: process \d+ holds the lock"):
            with locks.hold(path, what="the run 'x'", hint="use another --name"):
                pass
    with locks.hold(path, what="the run 'x'", hint="use another --name"):
        pass
