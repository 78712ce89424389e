"""core/procs: every child dies with the process that started it, even on SIGKILL, and not before."""

import os
import signal
import threading
import time

import pytest
from process_checks import is_running, kill_quietly, read_line, start_python, wait_until_gone

from wand_assets.core import procs


def test_child_outlives_the_thread_that_started_it():
    # The parent-death signal watches the forking thread: were the child forked by this short-lived
    # thread, the kernel would kill it as soon as the thread ends.
    started = []
    thread = threading.Thread(target=lambda: started.append(procs.spawn(["sleep", "60"])))
    thread.start()
    thread.join(timeout=30)
    child = started[0]
    try:
        time.sleep(0.5)
        assert is_running(child.pid)
    finally:
        procs.kill_process_group(child)


PARENT = """
import sys, threading, time
from wand_assets.core import procs

started = []
thread = threading.Thread(target=lambda: started.append(procs.spawn(["sleep", "300"])))
thread.start()
thread.join()
print(started[0].pid, flush=True)
threading.Thread(
    target=procs.run_tool,
    args=(["sh", "-c", "echo $$; exec sleep 300"],),
    kwargs={"what": "sleep", "timeout_s": 600, "log": lambda line: print(line, flush=True)},
    daemon=True,
).start()
time.sleep(600)
"""


def test_children_die_when_the_parent_is_killed_by_sigkill():
    parent = start_python(PARENT)
    children = []
    try:
        children.append(int(read_line(parent, 60)))  # spawned by a thread that has ended
        children.append(int(read_line(parent, 60)))  # run_tool's tool, from a thread still waiting on it
        assert all(is_running(pid) for pid in children)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert [pid for pid in children if not wait_until_gone(pid, 5)] == []
    finally:
        for pid in children:  # first: a surviving child holds the parent's stdout open
            kill_quietly(pid)
        parent.kill()
        parent.communicate(timeout=30)


@pytest.mark.parametrize("kwargs", [{"preexec_fn": os.getpid}, {"start_new_session": False}])
def test_spawn_refuses_to_be_told_how_to_start_the_child(kwargs):
    with pytest.raises(TypeError, match=r"spawn\(\) sets preexec_fn and start_new_session itself"):
        procs.spawn(["true"], **kwargs)
