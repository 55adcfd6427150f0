"""/metrics: Prometheus text with requests, tokens, latency and cancellations."""

import httpx

KEY = {"Authorization": "Bearer sesame"}


def _metric(served, name: str, **labels) -> float:
    text = httpx.get(served.url + "/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + ("{" + wanted + "}" if wanted else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_tokens_and_latency(served):
    httpx.post(served.url + "/v1/completions", json={"model": "lm", "prompt": "hi", "max_tokens": 3}, headers=KEY,
               timeout=60)
    assert _metric(served, "gptkit_requests_total", route="/v1/completions", status="200") >= 1
    assert _metric(served, "gptkit_generation_tokens_total", model="lm") >= 3
    assert _metric(served, "gptkit_time_to_first_token_seconds_count", model="lm") >= 1
