"""The event recorder correlates as client-go does: deduplication, aggregation
of similar events, and a per-object spam filter; a full queue drops events."""

from __future__ import annotations

from kbox.api.client import InProcessClient
from kbox.controllers import events as ev
from kbox.controllers.events import EventRecorder


def _pod(name: str = "web-1") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}}


def _events(api) -> list[dict]:
    return sorted(InProcessClient(api).list("events", "default")["items"],
                  key=lambda e: e["metadata"]["name"])


def test_identical_events_fold_into_one_with_a_count(api, fake_clock):
    rec = EventRecorder(InProcessClient(api), "kubelet", clock=fake_clock, synchronous=True)
    for _ in range(3):
        rec.normal(_pod(), "Pulled", "Container image already present on machine")
        fake_clock.advance(1)
    (e,) = _events(api)
    assert e["count"] == 3 and e["reason"] == "Pulled"
    assert e["firstTimestamp"] != e["lastTimestamp"]


def test_ten_similar_events_are_combined_from_then_on(api, fake_clock):
    rec = EventRecorder(InProcessClient(api), "replicaset-controller", clock=fake_clock,
                        synchronous=True)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web", "namespace": "default", "uid": "rs-1"}}
    for i in range(15):
        rec.normal(rs, "SuccessfulCreate", f"Created pod: web-{i}")
    evs = _events(api)
    plain = [e for e in evs if not e["message"].startswith(ev.AGGREGATE_PREFIX)]
    combined = [e for e in evs if e["message"].startswith(ev.AGGREGATE_PREFIX)]
    assert len(plain) == 9                       # the first nine stand alone
    assert len(combined) == 1                    # the tenth on share one Event
    assert combined[0]["count"] == 6
    assert combined[0]["message"] == ev.AGGREGATE_PREFIX + "Created pod: web-14"
    # ten minutes later the window starts again
    fake_clock.advance(ev.AGGREGATE_WINDOW + 1)
    rec.normal(rs, "SuccessfulCreate", "Created pod: web-99")
    assert any(e["message"] == "Created pod: web-99" for e in _events(api))


def test_spam_filter_allows_25_per_object_then_one_per_five_minutes(api, fake_clock):
    rec = EventRecorder(InProcessClient(api), "kubelet", clock=fake_clock, synchronous=True)
    for i in range(40):
        rec.warning(_pod(), "BackOff", "Back-off restarting failed container")
    (e,) = _events(api)
    assert e["count"] == ev.SPAM_BURST and rec.spam_dropped == 40 - ev.SPAM_BURST
    # another object from the same source has its own budget
    rec.warning(_pod("web-2"), "BackOff", "Back-off restarting failed container")
    assert len(_events(api)) == 2
    fake_clock.advance(300)
    rec.warning(_pod(), "BackOff", "Back-off restarting failed container")
    rec.warning(_pod(), "BackOff", "Back-off restarting failed container")
    e = next(x for x in _events(api) if x["involvedObject"]["name"] == "web-1")
    assert e["count"] == ev.SPAM_BURST + 1


def test_a_full_queue_drops_events_instead_of_blocking(api, fake_clock, monkeypatch):
    monkeypatch.setattr(ev, "MAX_QUEUED", 5)
    rec = EventRecorder(InProcessClient(api), "scheduler", clock=fake_clock)
    rec._thread = object()            # no writer thread: the queue only fills
    for i in range(8):
        rec.normal(_pod(f"p{i}"), "Scheduled", f"Successfully assigned default/p{i}")
    assert rec._queue.qsize() == 5 and rec.dropped == 3
