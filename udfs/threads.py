"""Run native-extension work on threads that Python itself started.

PyFlink's thread mode calls Python from Java task threads, and Python's GIL-state API does not
know their thread states. Extensions built with pybind11 (onnxruntime, parts of scipy that NLTK
and scikit-learn import) go through that API, so importing them, or creating their objects, from
an operator while another operator's thread was in Python deadlocked the job: the task never left
INITIALIZING (reproduced with the analyze topology). Threads started by Python are known to that
API, so that work runs on a small pool of them while the caller waits (a hand-off per call or
batch: microseconds). A thread Python started itself (the media pipeline's, the CLI's) runs the
work in place: a model stepped thousands of times per second (the VAD) would otherwise spend
more time handing over than computing.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="native")


def on_python_thread(function, *args: Any) -> Any:
    # A thread Python did not start (a Java task thread) shows up as a _DummyThread.
    if not isinstance(threading.current_thread(), threading._DummyThread):
        return function(*args)
    return _POOL.submit(function, *args).result()
