import pytest

from gptkit import GptkitError
from gptkit.data.clean import CleanConfig, Cleaner, redact_pii, remove_stopwords


def test_nfc_normalisation_is_applied_and_counted():
    cleaner = Cleaner()
    assert cleaner("Cafe\u0301") == "Caf\u00e9"
    assert cleaner.counts["nfc_normalized"] == 1
    assert Cleaner(CleanConfig(nfc=False))("Cafe\u0301") == "Cafe\u0301"


def test_control_characters_are_stripped_but_whitespace_kept():
    cleaner = Cleaner()
    assert cleaner("a\x00b\x1bc\td\ne\r\x7f\x85") == "abc\td\ne\r"
    assert cleaner.counts["control_chars_removed"] == 4


def test_short_and_empty_documents_are_dropped():
    cleaner = Cleaner(CleanConfig(min_chars=5))
    assert [cleaner(d) for d in ["", "   ", "abcd", "abcde"]] == [None, None, None, "abcde"]
    assert cleaner.counts["dropped_short"] == 3


def test_exact_duplicates_are_dropped():
    cleaner = Cleaner()
    assert [cleaner(d) for d in ["x y", "z", "x y"]] == ["x y", "z", None]
    assert cleaner.counts["dropped_duplicate"] == 1
    assert Cleaner(CleanConfig(dedup_exact=False))("x") == "x"


def test_near_duplicates_are_dropped_and_distinct_documents_kept():
    pytest.importorskip("datasketch")
    base = " ".join(f"word{i}" for i in range(200))
    near = base.replace("word100", "changed")  # one word of 200 differs
    other = " ".join(f"other{i}" for i in range(200))
    cleaner = Cleaner(CleanConfig(dedup_near=True))
    assert [cleaner(d) is None for d in [base, near, other]] == [False, True, False]
    assert cleaner.counts["dropped_near_duplicate"] == 1


def test_near_duplicate_shingles_and_permutations_are_settings():
    pytest.importorskip("datasketch")
    words = [f"w{i}" for i in range(60)]
    shuffled = " ".join(words[::2] + words[1::2])  # the same words in another order: few 5-word shingles shared
    default = Cleaner(CleanConfig(dedup_near=True))
    assert [default(d) is None for d in [" ".join(words), shuffled]] == [False, False]
    by_word = Cleaner(CleanConfig(dedup_near=True, near_shingle_words=1, near_permutations=64))
    assert [by_word(d) is None for d in [" ".join(words), shuffled]] == [False, True]


def test_pii_is_replaced_by_placeholders():
    text = ("Mail jane.doe@example.co.uk or +1 415-555-2671, server 192.168.0.12, "
            "call (030) 1234 5678. Version 3.11.7 and year 2024 stay.")
    cleaner = Cleaner(CleanConfig(redact_pii=True))
    out = cleaner(text)
    assert out == ("Mail <EMAIL> or <PHONE>, server <IP>, call <PHONE>. "
                   "Version 3.11.7 and year 2024 stay.")
    assert (cleaner.counts["pii_email"], cleaner.counts["pii_phone"], cleaner.counts["pii_ip"]) == (1, 2, 1)
    assert redact_pii("no personal data here") == "no personal data here"


def test_stopword_removal_is_for_retrieval_and_off_by_default():
    assert remove_stopwords("The cat is on the mat, and it sleeps.") == "cat mat, sleeps."
    assert Cleaner()("The cat is on the mat") == "The cat is on the mat"
    assert Cleaner(CleanConfig(remove_stopwords=True))("The cat is on the mat") == "cat mat"


def test_bad_cleaning_settings_are_rejected():
    with pytest.raises(GptkitError):
        CleanConfig(min_chars=-1)
    with pytest.raises(GptkitError):
        CleanConfig(near_threshold=1.5)
