import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig, load_config
from gptkit.config import FinetuneConfig, RunConfig, TrainConfig, presets


def test_there_are_presets():
    assert set(presets()) >= {"tiny", "demo", "shakespeare-char", "small", "gpt2-124m"}


@pytest.mark.parametrize("name", presets())
def test_every_preset_parses(name):
    kind = FinetuneConfig if name in presets(FinetuneConfig) else RunConfig
    assert name in presets(kind) and (name in presets(RunConfig)) != (name in presets(FinetuneConfig))
    config = load_config(kind, name).model
    assert config.n_embd % config.n_head == 0


def test_gpt2_preset_has_gpt2_small_size():
    with torch.device("meta"):
        assert GPT(load_config(RunConfig, "gpt2-124m").model).num_params() == 124_439_808


def test_overrides_are_typed_and_win_over_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("n_layer = 2\nn_head = 2\nn_embd = 16\n")
    config = load_config(ModelConfig, path, ["n_layer=5", "dropout=0.25", "bias=false"])
    assert (config.n_layer, config.dropout, config.bias, config.n_embd) == (5, 0.25, False, 16)


@pytest.mark.parametrize("overrides, message", [
    (["n_layers=2"], "unknown key.*n_layers"),
    (["n_layer"], "key=value"),
    (["n_head=5"], "divisible by n_head"),
    (["block_size=big"], "block_size must be an integer"),
    (["block_size=0"], "block_size must be >= 1"),
])
def test_bad_overrides_are_clear_errors(overrides, message):
    with pytest.raises(GptkitError, match=message):
        load_config(ModelConfig, None, overrides)


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(GptkitError, match="neither a file nor a preset"):
        load_config(ModelConfig, tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("n_layer = = 3")
    with pytest.raises(GptkitError, match="not a valid"):
        load_config(ModelConfig, bad)


def test_run_config_overrides_find_their_section(tmp_path):
    config = load_config(RunConfig, "tiny", ["lr=0.01", "model.n_layer=3", "train.batch_size=2"])
    assert (config.train.lr, config.model.n_layer, config.train.batch_size) == (0.01, 3, 2)
    assert config.model.n_embd == 64  # from the file
    with pytest.raises(GptkitError, match="no section 'optim'"):
        load_config(RunConfig, None, ["optim.lr=1"])
    with pytest.raises(GptkitError, match=r"\[train\]: unknown key.*learning_rate"):
        load_config(RunConfig, None, ["train.learning_rate=1"])


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"grad_accum": 0}, {"schedule": "linear"},
                                 {"dtype": "int8"}, {"min_lr": 1.0, "lr": 0.1}, {"max_steps": -5}])
def test_invalid_train_config_is_rejected(bad):
    with pytest.raises(GptkitError, match="train config"):
        TrainConfig(**bad)


@pytest.mark.parametrize("overrides, message", [
    (["lr=abc"], "train config: lr must be a number, got 'abc'"),
    (["schedule=linear"], "schedule must be one of cosine, wsd, constant"),
    (["compile=1"], "compile must be true or false"),
    (["dropout=0.5", "attn_dropout=yes"], "attn_dropout must be a number or unset"),
    (["max_steps=2.5"], "max_steps must be an integer"),
])
def test_values_of_the_wrong_type_or_outside_their_choices_name_the_key(overrides, message):
    with pytest.raises(GptkitError, match=message):
        load_config(RunConfig, "tiny", overrides)


def test_presets_load_by_name_and_a_wrong_name_lists_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a preset name needs no checkout around it
    assert load_config(RunConfig, "demo").model.n_embd == 192
    with pytest.raises(GptkitError, match="neither a file nor a preset.*demo, .*tiny"):
        load_config(RunConfig, "tiyn")
    (tmp_path / "tiny").write_text("[model]\nn_layer = 7\n")  # a file of that name wins over the preset
    assert load_config(RunConfig, "tiny").model.n_layer == 7


def test_prepare_config_has_read_and_clean_tables(tmp_path):
    from gptkit.data import PrepareConfig

    path = tmp_path / "prep.toml"
    path.write_text('tokenizer = "char"\n[read]\ninclude = ["*.txt"]\n[clean]\nmin_chars = 3\n')
    config = load_config(PrepareConfig, path, ["nfc=false", "read.txt_documents=line"])
    assert (config.tokenizer, config.read.include, config.read.txt_documents) == ("char", ("*.txt",), "line")
    assert (config.clean.min_chars, config.clean.nfc) == (3, False)
    with pytest.raises(GptkitError, match="txt_documents must be one of file, paragraph, line"):
        load_config(PrepareConfig, None, ["txt_documents=page"])


def test_a_growth_schedule_is_a_list_of_tables(tmp_path):
    path = tmp_path / "grow.toml"
    path.write_text("[model]\nn_layer = 2\nn_head = 2\nn_embd = 32\n[train]\nmax_steps = 1000\n"
                    "grow = [{at = 0.15, n_layer = 4}, {at = 400, n_layer = 8, n_embd = 64}]\n")
    run = load_config(RunConfig, path)
    assert [stage.step(run.train.max_steps) for stage in run.train.grow] == [150, 400]
    assert [(s.n_layer, s.n_embd, s.n_head) for s in run.shapes()] == [(2, 32, 2), (4, 32, 2), (8, 64, 4)]
    again = load_config(RunConfig, None, ["model.n_layer=2", "grow=[{at = 0.5, n_layer = 3}]"])
    assert again.shapes()[-1].n_layer == 3
    from gptkit.config import from_dict, to_dict
    assert from_dict(RunConfig, to_dict(run)) == run  # what checkpoints and run.json store loads back


@pytest.mark.parametrize("grow, message", [
    ("[{at = 0, n_layer = 4}]", "a step >= 1 or a fraction in"),
    ("[{at = 1.5, n_layer = 4}]", "a step >= 1 or a fraction in"),
    ("[{at = 0.5}]", "changes nothing"),
    ("[{at = 0.5, n_layers = 4}]", r"grow\[0\]: unknown key"),
    ("[0.5]", "must be a table"),
    ("0.5", "grow must be a list of tables, got 0.5"),
    ("[{at = 0.6, n_layer = 4}, {at = 0.5, n_layer = 6}]", "increasing steps below max_steps"),
    ("[{at = 1000, n_layer = 4}]", "increasing steps below max_steps"),
    ("[{at = 0.5, n_layer = 1}]", "must grow the model: n_layer >= 2"),
    ("[{at = 0.5, n_embd = 48}]", "n_embd a multiple of 32"),
])
def test_bad_growth_schedules_are_clear_errors(grow, message):
    with pytest.raises(GptkitError, match=message):
        load_config(RunConfig, None, ["model.n_layer=2", "model.n_embd=32", "model.n_head=2", "max_steps=1000",
                                      f"grow={grow}"])


def test_a_formats_settings_live_in_its_own_table_and_a_bare_override_finds_it(tmp_path):
    path = tmp_path / "ft.toml"
    path.write_text('[task]\nformat = "qa"\n[task.qa]\ndoc_stride = 32\n[task.translation]\nsource_lang = "fr"\n')
    config = load_config(FinetuneConfig, path, ["max_question_tokens=16", "task.summarization.summary_field=subject"])
    assert (config.task.qa.doc_stride, config.task.qa.max_question_tokens) == (32, 16)
    assert config.task.translation.source_lang == "fr" and config.task.summarization.summary_field == "subject"


@pytest.mark.parametrize("text, overrides, message", [
    ("[task]\ndoc_stride = 3\n", [], r"\[task\]: doc_stride is now a setting of \[task.qa\]: move it into that table "
                                     r"\(or override task.qa.doc_stride=...\)"),
    ("", ["task.source_lang=fr"], r"unknown key 'source_lang' \(it is now task.translation.source_lang\)"),
    ("[task.qa]\ndoc_stride = -1\n", [], r"\[task.qa\]: doc_stride must be >= 0"),
    ("[task.encoder]\ntemperature = 0\n", [], r"\[task.encoder\]: temperature must be > 0"),
])
def test_a_key_that_moved_to_its_formats_table_is_refused_naming_the_new_place(tmp_path, text, overrides, message):
    path = tmp_path / "ft.toml"
    path.write_text(text)
    with pytest.raises(GptkitError, match=message):
        load_config(FinetuneConfig, path, overrides)
