"""What reading counts: records kept, malformed lines skipped, and the first problem found."""

from gptkit.data import Example, Record, TaskStats


def test_stats_count_every_skipped_line_and_keep_the_first_reason():
    stats = TaskStats()
    stats.skip("t.jsonl line 2", "not JSON")
    stats.skip("t.jsonl line 5", "'source' missing")
    assert stats.malformed == 2 and stats.first_problem == "t.jsonl line 2: not JSON"


def test_records_and_examples_are_values():
    assert Record({"source": "a"}) == Record({"source": "a"}) != Record(messages=({"role": "user", "content": "a"},))
    assert Example([1, 2], [False, True]).labels is None and not Example([1], [True]).truncated
