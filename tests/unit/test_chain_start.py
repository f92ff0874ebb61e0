"""chain_start.submit_in_order: each chain starts only after the one before it holds resources, has ended, or
has waited its time; the pipeline relies on it to give Ray's CPUs to the costliest chain first."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sqrl_rllib.chain_start import FirstTrialStarted, submit_in_order


def _recording_chain(events: list, behaviour: dict):
    lock = threading.Lock()

    def chain(source: str, started: threading.Event):
        with lock:
            events.append(("enter", source, time.monotonic()))
        kind, value = behaviour[source]
        if kind == "start_after":
            time.sleep(value)
            with lock:
                events.append(("started", source, time.monotonic()))
            started.set()
            time.sleep(0.2)
        elif kind == "raise":
            raise RuntimeError(source)
        elif kind == "never":
            time.sleep(value)
        return source

    return chain


def test_chains_enter_in_order_each_after_the_previous_started():
    events: list = []
    chain = _recording_chain(
        events, {"esac": ("start_after", 0.3), "sqrl": ("start_after", 0.1), "sac": ("start_after", 0)}
    )
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = submit_in_order(pool, chain, ["esac", "sqrl", "sac"], wait_s=10)
        assert [f.result() for f in futures] == ["esac", "sqrl", "sac"]
    entered = [source for kind, source, _ in events if kind == "enter"]
    assert entered == ["esac", "sqrl", "sac"]
    when = {(kind, source): t for kind, source, t in events}
    # The next chain waits for the started signal, not for the previous chain to end (which is 0.2 s later).
    assert when["enter", "sqrl"] >= when["started", "esac"]
    assert when["enter", "sac"] >= when["started", "sqrl"]
    assert when["enter", "sqrl"] < when["started", "esac"] + 0.15


def test_a_chain_that_never_starts_holds_the_next_only_wait_s():
    events: list = []
    chain = _recording_chain(events, {"esac": ("never", 2.0), "sac": ("start_after", 0)})
    with ThreadPoolExecutor(max_workers=2) as pool:
        begin = time.monotonic()
        futures = submit_in_order(pool, chain, ["esac", "sac"], wait_s=0.3)
        submitted = time.monotonic() - begin
        assert [f.result() for f in futures] == ["esac", "sac"]
    assert 0.25 <= submitted < 1.5, submitted


def test_a_failed_chain_releases_the_next_at_once_and_keeps_its_error():
    events: list = []
    chain = _recording_chain(events, {"esac": ("raise", None), "sac": ("start_after", 0)})
    with ThreadPoolExecutor(max_workers=2) as pool:
        begin = time.monotonic()
        futures = submit_in_order(pool, chain, ["esac", "sac"], wait_s=5)
        assert time.monotonic() - begin < 2
        with pytest.raises(RuntimeError, match="esac"):
            futures[0].result()
        assert futures[1].result() == "sac"


def test_first_trial_started_sets_its_event():
    event = threading.Event()
    FirstTrialStarted(event).on_trial_start(0, [], trial=None)
    assert event.is_set()


def test_first_trial_started_pickles_without_its_event():
    # Tune writes a run's callbacks into its experiment state with cloudpickle; an Event holds a lock.
    import pickle

    copy = pickle.loads(pickle.dumps(FirstTrialStarted(threading.Event())))
    assert copy.event is None
    copy.on_trial_start(0, [], trial=None)  # a restored run's copy: no event, no error
