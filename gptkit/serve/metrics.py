"""The server's Prometheus metrics (`GET /metrics`), one registry per app so tests can run several."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("gptkit_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.prompt_tokens = Counter("gptkit_prompt_tokens", "prompt tokens read", ["model"], registry=r)
        self.generated_tokens = Counter("gptkit_generation_tokens", "tokens generated", ["model"], registry=r)
        self.cancelled = Counter("gptkit_cancelled_requests", "generations cancelled (client gone, stopped)",
                                 ["model"], registry=r)
        self.rejected = Counter("gptkit_rejected_requests", "requests refused with 429: the queue was full",
                                ["model"], registry=r)
        self.engine_errors = Counter("gptkit_engine_errors", "engine steps that failed (their requests got an "
                                     "error; the engine went on)", ["model"], registry=r)
        self.waiting = Gauge("gptkit_queue_depth", "requests waiting for a slot", ["model"], registry=r)
        self.running = Gauge("gptkit_running_requests", "requests in the running batch", ["model"], registry=r)
        self.prefix_hits = Counter("gptkit_prefix_cache_hit_tokens", "prompt tokens reused from the prefix cache",
                                   ["model"], registry=r)
        self.ttft = Histogram("gptkit_time_to_first_token_seconds", "submit to first token", ["model"],
                              buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("gptkit_inter_token_latency_seconds", "time between a request's tokens", ["model"],
                             buckets=LATENCY_BUCKETS, registry=r)
        self.duration = Histogram("gptkit_request_duration_seconds", "submit to last token", ["model"],
                                  buckets=LATENCY_BUCKETS, registry=r)

    def on_step(self, model: str):
        """The scheduler's per-step callback for `model`: running and waiting requests, prefix-cache hits."""
        running, waiting, hits = self.running.labels(model), self.waiting.labels(model), self.prefix_hits.labels(model)
        seen = [0]

        def update(engine) -> None:
            running.set(sum(r is not None for r in engine.running))
            waiting.set(len(engine.waiting))
            if engine.prefix_cache is not None and engine.prefix_cache.hit_tokens > seen[0]:
                hits.inc(engine.prefix_cache.hit_tokens - seen[0])
                seen[0] = engine.prefix_cache.hit_tokens
        return update

    def render(self) -> bytes:
        return generate_latest(self.registry)
