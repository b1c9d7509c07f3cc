"""The worker behind nginx leaves connections to the first worker while it is free (a real
listening socket with a connection waiting, the pool's shared byte; the pool itself is tried in
tests/system/test_front.py)."""

import os
import socket
import time

from service.gunicorn_worker import MAX_DEFER_SECONDS, WarmFirstWorker, idle_flag


def _worker(listener: socket.socket, flag, *, first: bool) -> WarmFirstWorker:
    worker = object.__new__(WarmFirstWorker)  # gunicorn's constructor wants an arbiter around it
    worker.first, worker.first_idle = first, flag
    worker.PIPE = os.pipe()
    worker.wait_fds = [listener, worker.PIPE[0]]
    worker.notify = lambda: None
    return worker


def test_a_waiting_first_worker_says_it_is_free_and_the_others_leave_it_the_connection_for_a_while():
    flag = idle_flag()
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.create_connection(listener.getsockname()):
        first = _worker(listener, flag, first=True)
        assert first.wait(timeout=5) == [listener] and flag[0] == 1
        other = _worker(listener, flag, first=False)
        started = time.monotonic()
        assert other.wait(timeout=5) == [listener]  # then it may take it: the first is not running
        assert time.monotonic() - started >= MAX_DEFER_SECONDS
        flag[0] = 0  # the first took it, or works on a request: nothing to defer to
        assert other.wait(timeout=5) == [listener]
