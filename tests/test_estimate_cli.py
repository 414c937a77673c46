"""`lmkl estimate` end to end on two tiny random GPT-2s, and its answers to bad input."""

from __future__ import annotations

import json

import pytest
import torch

import models_fixtures
from lmkl.cli import main as lmkl_main
from lmkl.kl import UNBIASED
from lmkl.models.testing import build_tiny_gpt2, build_tiny_tokenizer

tiny_dirs = models_fixtures.tiny_dirs  # module-scoped fixture shared by the model tests


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    f.write_text("The movie was\n\nBoring, slow and far too long.\nI loved\n", encoding="utf-8")
    return f


def _args(d, prompts, out=None, **kw):
    opts = {"--samples": "48", "--max-new-tokens": "8", "--batch-size": "32", "--seed": "5"} | kw
    argv = ["estimate", "--p", str(d.p), "--q", str(d.q), "--prompts", str(prompts), "--no-progress"]
    argv += [x for k, v in opts.items() for x in (k, v)]
    return argv + (["--out", str(out)] if out else [])


@pytest.fixture(scope="module")
def result(tiny_dirs, prompts_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("estimate") / "kl.json"
    assert lmkl_main(_args(tiny_dirs, prompts_file, out)) == 0
    return json.loads(out.read_text())


def test_json_layout(result):
    assert set(result) == {"estimators", "per_prompt", "config", "timing"}
    assert set(result["timing"]) == {"sampling_s", "scoring_s", "estimation_s"}
    assert len(result["per_prompt"]) == 3  # the blank line is skipped
    for e in result["estimators"].values():
        assert {"mean", "stderr", "ci_low", "ci_high", "n", "frac_negative"} <= set(e)
        assert e["n"] == 3 * 48
    # The pooled value is the mean of the per-prompt means; its stderr combines theirs.
    rb = [pp["estimators"]["rb"] for pp in result["per_prompt"]]
    assert result["estimators"]["rb"]["mean"] == pytest.approx(sum(e["mean"] for e in rb) / 3)
    assert result["estimators"]["rb"]["stderr"] == pytest.approx(sum(e["stderr"] ** 2 for e in rb) ** 0.5 / 3)


def test_rb_beats_mc_is_nonnegative_and_unbiased_estimators_agree(result):
    est = result["estimators"]
    assert est["rb"]["stderr"] < est["mc"]["stderr"]
    assert est["rb"]["frac_negative"] == 0.0
    assert all(pp["estimators"]["rb"]["frac_negative"] == 0.0 for pp in result["per_prompt"])
    # Any two unbiased estimators from the same samples: sd(A − B) ≤ sd(A) + sd(B) whatever their
    # correlation, so |mean_A − mean_B| ≤ 4 (se_A + se_B) fails for correct code with probability
    # below ~6e-5 per pair (normal approximation); seeded, so deterministic.
    names = sorted(UNBIASED)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            gap = abs(est[a]["mean"] - est[b]["mean"])
            assert gap <= 4 * (est[a]["stderr"] + est[b]["stderr"]), (a, b, est[a], est[b])


def test_same_seed_same_numbers(tiny_dirs, prompts_file, result, tmp_path):
    out = tmp_path / "again.json"
    assert lmkl_main(_args(tiny_dirs, prompts_file, out)) == 0
    again = json.loads(out.read_text())
    assert again["estimators"] == result["estimators"] and again["per_prompt"] == result["per_prompt"]
    assert lmkl_main(_args(tiny_dirs, prompts_file, out, **{"--seed": "6"})) == 0
    assert json.loads(out.read_text())["estimators"] != result["estimators"]


def test_table_and_help(tiny_dirs, prompts_file, capsys):
    assert lmkl_main(_args(tiny_dirs, prompts_file, **{"--samples": "2", "--max-new-tokens": "2"})) == 0
    table = capsys.readouterr().out
    assert "rb" in table and "95% CI" in table and "share < 0" in table
    assert lmkl_main(["estimate", "--help"]) == 0
    assert "mean over prompts of the per-prompt means" in capsys.readouterr().out.replace("\n", " ")


def _fails(argv, capsys, *needles):
    code = lmkl_main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


def test_different_vocabularies_exit_2_naming_both_sizes(tiny_dirs, prompts_file, tmp_path, capsys):
    tok2 = build_tiny_tokenizer(tmp_path / "tok2", vocab_size=280)
    other = build_tiny_gpt2(tmp_path / "other", 280, seed=0, tokenizer_dir=tok2)
    argv = _args(tiny_dirs, prompts_file)
    argv[argv.index("--q") + 1] = str(other)
    _fails(argv, capsys, "300", "280")


def test_missing_model_dir_and_empty_prompts(tiny_dirs, prompts_file, tmp_path, capsys):
    argv = _args(tiny_dirs, prompts_file)
    argv[argv.index("--p") + 1] = str(tmp_path / "no-such-model")
    _fails(argv, capsys, str(tmp_path / "no-such-model"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    _fails(_args(tiny_dirs, empty), capsys, "no prompts", str(empty))


@pytest.mark.parametrize("flag, value", [("--samples", "0"), ("--samples", "-3"), ("--samples", "1"),
                                         ("--max-new-tokens", "0"), ("--batch-size", "-1"),
                                         ("--temperature", "0")])
def test_bad_numbers_are_usage_errors(tiny_dirs, prompts_file, capsys, flag, value):
    _fails(_args(tiny_dirs, prompts_file, **{flag: value}), capsys, flag)


def test_nan_logits_name_the_model_and_position(tiny_dirs, prompts_file, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    bad = tmp_path / "nan-q"
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs.q, local_files_only=True)
    with torch.no_grad():
        model.transformer.ln_f.weight.fill_(float("nan"))
    model.save_pretrained(bad)
    for f in tiny_dirs.tokenizer.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    argv = _args(tiny_dirs, prompts_file)
    argv[argv.index("--q") + 1] = str(bad)
    _fails(argv, capsys, f"model q ({bad})", "response position 0")


@pytest.fixture
def offline_standin_hub(standin_hub, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(standin_hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return standin_hub


def test_hub_ids_resolve_through_the_hub_cache(offline_standin_hub, prompts_file, tmp_path, capsys):
    """--p/--q as hub ids, offline, from the stand-in cache (a tiny GPT-2 under lvwerra/gpt2-imdb, with
    GPT-2's 50257-token BPE). p = q, so every per-token KL is exactly 0 and rb's estimate is 0."""
    out = tmp_path / "kl.json"
    argv = ["estimate", "--p", "lvwerra/gpt2-imdb", "--q", "lvwerra/gpt2-imdb", "--prompts", str(prompts_file),
            "--samples", "2", "--max-new-tokens", "3", "--no-progress", "--device", "auto", "--out", str(out)]
    assert lmkl_main(argv) == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    cfg = result["config"]
    assert cfg["p"] == "lvwerra/gpt2-imdb" and cfg["vocab_size"] == 50257
    assert cfg["p_dir"].startswith(str(offline_standin_hub / "hub" / "models--lvwerra--gpt2-imdb" / "snapshots"))
    assert cfg["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert result["estimators"]["rb"]["mean"] == 0.0

    argv[argv.index("--q") + 1] = "org/absent"
    _fails(argv, capsys, "--q=org/absent: no such model folder", "hf download org/absent", "HF_HUB_OFFLINE is set")


def test_dtype_option(tiny_dirs, prompts_file, tmp_path, result):
    """float64 models: the same samples (sampling draws from the same generator; the dtype changes the
    logits only by rounding), the same estimates to float32 precision."""
    out = tmp_path / "kl64.json"
    assert lmkl_main([*_args(tiny_dirs, prompts_file, out), "--dtype", "float64"]) == 0
    r64 = json.loads(out.read_text())
    assert r64["config"]["dtype"] == "float64" and result["config"]["dtype"] == "float32"
    # 1e-4 relative: float32 logits round at ~1e-7 relative, amplified by the sums over ≤ 8 positions and
    # by an occasional different sampled token being very unlikely at this seed (checked: identical tokens).
    assert r64["estimators"]["rb"]["mean"] == pytest.approx(result["estimators"]["rb"]["mean"], rel=1e-4)


@pytest.mark.parametrize("device, needle", [("tpu", "cpu, cuda or cuda:<i>, got 'tpu'"), ("cuda:99", "cuda:99 was asked for")])
def test_bad_device_is_refused_naming_the_option(tiny_dirs, prompts_file, capsys, device, needle):
    _fails([*_args(tiny_dirs, prompts_file), "--device", device], capsys, "--device", needle)


def test_bad_dtype_is_a_usage_error(tiny_dirs, prompts_file, capsys):
    _fails([*_args(tiny_dirs, prompts_file), "--dtype", "int8"], capsys, "--dtype")
