"""One YAML config describes a whole run: pydantic models of every stage's settings, with clear errors.

Every field is documented (``cotdistill config-reference`` prints them all; ``docs/config.md`` is its output).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cotdistill.config_io import blame, format_validation_error, parse_overrides, read_config_file, set_by_dotted
from cotdistill.errors import ConfigError

STYLES = ("vanilla", "cot", "tot", "program", "backward", "facts")


class Section(BaseModel):
    """Base of every config section: unknown keys are errors (a typo must never be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class QuestionsConfig(Section):
    """Where questions come from and how many of each split."""

    source: str = Field(
        "lab:arith,date,compare",
        description="lab:TASKS | rg:NAME[,NAME] | file:PATH | hf:NAME[:CONFIG] | mcc-kd:PATH | imported (keep the "
        "questions `cotdistill import` wrote)",
    )
    task: str | None = Field(None, description="task family override (math, choice, yesno, label)")
    train: int = Field(300, ge=0, description="number of training questions")
    dev: int = Field(50, ge=0, description="number of dev questions (checkpoint selection)")
    test: int = Field(100, ge=0, description="number of test questions (evaluation)")
    fields: dict[str, str] = Field(default_factory=dict, description="file sources: our field -> file column")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="source-specific knobs (e.g. lab difficulty; hf: recipe, splits {ours: theirs}, field)",
    )


_LITERAL_KEY = re.compile(r"^(sk-|sk_|gsk_|xai-|hf_)[A-Za-z0-9_-]{8,}")


class TeacherConfig(Section):
    """One teacher: a name, a backend and its generation settings."""

    name: str = Field(min_length=1, description="recorded on every path this teacher writes")
    backend: str = Field(
        "synthetic",
        description="openai: any OpenAI-compatible server; hf: a local model; synthetic: the lab's (or a plugin's)",
    )
    model: str = Field("", description="openai: model name; hf: local directory or .gguf file")
    base_url: str | None = Field(None, description="openai: server URL, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(None, description="openai: NAME of the environment variable with the key")
    temperature: float = Field(0.8, ge=0.0, le=2.0, description="sampling temperature (0: greedy)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling")
    max_tokens: int = Field(1000, ge=1, description="new tokens per path")
    concurrency: int = Field(16, ge=1, description="openai: requests in flight at once")
    requests_per_minute: float | None = Field(None, gt=0, description="openai: optional pacing")
    max_retries: int = Field(6, ge=0, description="openai: retries on 429 / 5xx / timeouts / connection errors")
    timeout_s: float = Field(60.0, gt=0, description="openai: per-request timeout in seconds")
    batch_size: int = Field(8, ge=1, description="hf: prompts per generate() call")
    profile: dict[str, Any] = Field(default_factory=dict, description="synthetic: fault rates and verbosity")
    retry_backoff_s: float = Field(1.0, ge=0, description="openai: first retry delay; doubles per retry, jittered")
    send_seed: bool = Field(True, description="openai: send a per-request seed (false for servers that reject it)")
    n_per_request: bool = Field(
        False, description="openai: all samples of a prompt in one request (n=k): the prompt is paid once"
    )
    device: str | None = Field(None, description="hf: torch device (default cuda when available, else cpu)")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from cotdistill.teachers import backend_names

        if v not in backend_names():
            raise ValueError(f"unknown backend '{v}' (known: {', '.join(backend_names())})")
        return v

    @model_validator(mode="before")
    @classmethod
    def _no_literal_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("api_key", "key", "token", "secret"):
                if key in data:
                    raise ValueError(
                        f"'{key}' must not hold a secret in the config: put the key in an environment variable "
                        "and name it with api_key_env"
                    )
            env = data.get("api_key_env")
            if isinstance(env, str) and (_LITERAL_KEY.match(env) or len(env) > 64):
                raise ValueError(
                    "api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key itself"
                )
        return data


class GenerateConfig(Section):
    """Teachers x styles x questions x samples."""

    styles: list[str] = Field(default_factory=lambda: list(STYLES), description="reasoning styles (style files)")
    samples: int = Field(1, ge=1, description="paths per (question, teacher, style)")
    style_dirs: list[str] = Field(default_factory=list, description="extra directories of style YAML files")
    splits: list[str] = Field(default_factory=lambda: ["train"], description="question splits to generate for")


class JudgeConfig(Section):
    """The second filter stage: a judge of each path's soundness (METHODS.md §1b)."""

    kind: str = Field(
        "arithmetic",
        description="arithmetic: re-compute every stated calculation (local); llm: a teacher's backend judges "
        "(VALID / INVALID - reason, temperature 0); synthetic: the arithmetic judge plus, for lab questions, the "
        "lab's solution-based check; none: no judge",
    )
    teacher: str | None = Field(None, description="llm: which teacher's backend judges")
    unparseable: Literal["reject", "accept"] = Field(
        "reject", description="llm: what to do with a reply that is neither VALID nor INVALID (or a failed request)"
    )
    judge_rejected: bool = Field(
        False, description="llm: also judge paths the answer check already rejected (costs requests; for analysis)"
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        from cotdistill.quality.judges import judge_kinds

        if v not in judge_kinds():
            raise ValueError(f"unknown judge '{v}' (known: {', '.join(judge_kinds())})")
        return v


class ConsensusConfig(Section):
    """Graph consensus C per path (METHODS.md §2a): sentence-embedding similarity plus answer agreement."""

    enabled: bool = Field(True, description="compute checks.consensus (needs the sentence encoder)")
    encoder: str = Field("minilm", description="'minilm' (offline default) or a local sentence-transformers path")
    delta: float = Field(0.5, ge=-1.0, le=1.0, description="cosine similarity below delta gives no edge")
    eta: float = Field(1.0, ge=0.0, description="edge bonus factor when two paths give the same answer")
    use_gold: bool = Field(True, description="wrong answer -> C=0 using gold; false: majority answer")
    centrality: Literal["degree", "pagerank"] = Field("degree", description="weighted degree or weighted PageRank")
    normalize: Literal["question_max", "graph_max"] = Field(
        "question_max",
        description="question_max: divide by the question's top score (METHODS.md); graph_max: by the most a "
        "degree can be, (n-1)(1-delta)(1+eta), so scores compare across questions",
    )
    batch_size: int = Field(64, ge=1, description="texts per encoder forward pass")
    min_score: float = Field(
        0.0, ge=0.0, le=1.0, description="reject paths with C below this (reason low_consensus); 0 keeps all"
    )
    device: str = Field("cpu", description="encoder device (cpu, cuda, ...)")


class FilterConfig(Section):
    """Quality filtering of paths: answer check, judge, consensus; each stage switchable ("w/o QF" ablation)."""

    enabled: bool = Field(
        True, description="false: keep every path ('w/o QF' ablation); the checks are still computed and recorded"
    )
    answer_check: bool = Field(True, description="reject paths whose extracted answer is not equivalent to gold")
    lenient_extraction: bool = Field(True, description="accept an answer with no marker (last number)")
    batch_paths: int = Field(
        2048,
        ge=1,
        description="paths judged and embedded together (whole questions per batch); larger batches let the "
        "encoder group texts of similar length (less padding), memory grows with it",
    )
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    consensus: ConsensusConfig = Field(default_factory=ConsensusConfig)


class QuantizationConfig(Section):
    """QLoRA (QR-Distill's setting): the student's frozen base weights in 4-bit through bitsandbytes, LoRA on top."""

    bits: Literal[4] = Field(4, description="4-bit weights (bitsandbytes Linear4bit)")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="NF4 (QLoRA) or FP4")
    double_quant: bool = Field(True, description="quantise the quantisation constants too (QLoRA)")
    compute_dtype: Literal["bfloat16", "float16", "float32"] = Field("bfloat16", description="matmul dtype")


class StudentConfig(Section):
    """One student model: where it comes from, LoRA or full fine-tuning, its learning rate."""

    name: str = Field(min_length=1, description="directory name under RUN/students/")
    kind: Literal["preset", "hf", "gguf"] = Field(
        "preset", description="preset: built from scratch; hf: a local model directory; gguf: a .gguf file"
    )
    preset: Literal["tiny-gpt2", "tiny-llama"] | None = Field("tiny-gpt2", description="kind preset: which shape")
    path: str | None = Field(None, description="hf: model directory; gguf: .gguf file or 'smollm2'")
    size: dict[str, int] = Field(default_factory=dict, description="preset overrides: n_layer, d_model, vocab...")
    lora: dict[str, Any] | None = Field(None, description="r, alpha, dropout, target_modules; null = full FT")
    lr: float = Field(1e-3, gt=0, description="this student's AdamW learning rate")
    device: str | None = Field(None, description="this student's torch device (default: the loop's)")
    quantization: QuantizationConfig | None = Field(
        None, description="kind hf + lora only: 4-bit base weights (QLoRA); saved as a LoRA adapter over the base"
    )

    @model_validator(mode="after")
    def _qlora(self) -> StudentConfig:
        if self.quantization is not None and (self.kind != "hf" or self.lora is None):
            raise ValueError("quantization needs kind: hf and a lora section (QLoRA trains LoRA on 4-bit weights)")
        return self


class TrainConfig(Section):
    method: str = Field("sft-multi", description="sft-single | sft-multi | step-by-step | qr-distill | compact")
    epochs: int = Field(3, ge=1, description="passes over the training examples")
    batch_size: int = Field(16, ge=1, description="global micro-batch (examples per forward, all processes)")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    warmup_ratio: float = Field(0.05, ge=0, le=1, description="share of steps with linear warm-up, then cosine")
    weight_decay: float = Field(0.0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, description="gradient clipping norm (0: off)")
    max_length: int = Field(512, ge=16, description="longer examples are dropped whole and counted, never cut")
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 autocast; auto: on bf16 GPUs and AVX512 CPUs")
    checkpoint_every: int = Field(0, ge=0, description="steps between checkpoints (0: once per epoch)")
    options: dict[str, Any] = Field(
        default_factory=dict, description="the method's settings (see train.options.* below, per method)"
    )
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept in RUN/checkpoints (oldest removed)")
    dev_metric: Literal["auto", "loss", "accuracy"] = Field(
        "auto",
        description="dev check each epoch: loss on dev paths, greedy accuracy on dev questions; auto: "
        "loss when the dev split has kept paths, else accuracy",
    )
    dev_max_new_tokens: int = Field(128, ge=1, description="greedy tokens per dev question (dev_metric accuracy)")
    trackers: list[str] = Field(
        default_factory=lambda: ["tensorboard"], description="Accelerate trackers (RUN/logs/tb); [] for none"
    )
    length_grouping: bool = Field(True, description="path batching: group similar lengths (less padding)")
    max_paths: int | None = Field(None, ge=1, description="at most this many kept paths per question (file order)")
    max_paths_per_teacher: int | None = Field(
        None,
        ge=1,
        description="at most this many kept paths per question from each teacher (file order; before max_paths)",
    )
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward (less memory)")
    engine: Literal["auto", "ddp", "fsdp"] = Field(
        "auto",
        description="several processes: ddp (every process holds whole students, gradients summed) or fsdp "
        "(students sharded with FSDP2; every built-in method); auto: fsdp under an Accelerate FSDP config, else "
        "ddp",
    )
    answer_sentence: bool = Field(
        True,
        description='close a training path with the family\'s answer sentence ("The answer is N.") when strict '
        "extraction finds no answer in it but lenient extraction does (the path's own answer); counted in "
        "train_summary.json",
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        from cotdistill.training.methods import method_names

        if v not in method_names():
            raise ValueError(f"unknown method '{v}' (known: {', '.join(method_names())})")
        return v

    @model_validator(mode="after")
    def _method_options(self) -> TrainConfig:
        """``options`` must fit the method's options model: a typo names the key and the method's valid keys."""
        from cotdistill.config_io import options_error
        from cotdistill.training.methods import method_spec

        model = method_spec(self.method).options
        try:
            model.model_validate(self.options)
        except ValidationError as e:
            raise ValueError(options_error(e, self.method, list(model.model_fields))) from None
        return self


class ProbeConfig(Section):
    """A question set outside the training task: each student's accuracy on it before and after distillation."""

    name: str = Field(min_length=1, description="probe name in metrics.json and the report")
    source: str = Field(
        min_length=1, description="a question source: file:PATH | mcc-kd:PATH | hf:NAME | lab:TASKS | rg:NAME"
    )
    task: str | None = Field(None, description="task family of the probe's questions (when the source has none)")
    n: int = Field(200, ge=1, description="at most this many questions (the first n)")


class EvalConfig(Section):
    """Greedy zero-shot evaluation of the trained students and of their starting points (``cotdistill eval``)."""

    split: str = Field("test", description="question split to evaluate on")
    max_new_tokens: int = Field(256, ge=1, description="generation budget per answer (no EOS by then: cut off)")
    batch_size: int = Field(32, ge=1, description="prompts per generate() call (sorted by length)")
    ensemble: list[Literal["vote", "logprob"]] = Field(
        default_factory=lambda: ["vote", "logprob"], description="student ensembles to score (2+ students)"
    )
    device: str = Field("auto", description="eval device: auto (CUDA when available, else CPU), cpu, cuda, cuda:1...")
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 autocast; auto: on for bf16 CUDA, off on CPU")
    base: bool = Field(True, description="also evaluate every student as built, before training (the base rows)")
    probes: list[ProbeConfig] = Field(default_factory=list, description="question sets for forgetting (before/after)")
    drift: bool = Field(True, description="representation drift: linear CKA, mean cosine of base vs distilled states")
    drift_questions: int = Field(200, ge=2, description="questions of the first probe (else the eval split) for drift")
    calculator: bool = Field(False, description="calculator: write arithmetic results after '=' (dev check too)")


class BenchConfig(Section):
    """``cotdistill bench``: which students the single-student methods train (QR-Distill always trains all)."""

    single_students: list[str] | None = Field(
        None, description="students the single-student methods train, each on its own (default: every student)"
    )


class RunConfig(Section):
    """A whole run: questions -> paths -> filtered paths -> students -> metrics -> report."""

    name: str = Field("run", description="run name (default run directory runs/<name>)")
    seed: int = Field(0, description="seed of question sampling, generation, data order and initialisation")
    run_dir: str | None = Field(None, description="default runs/<name>")
    questions: QuestionsConfig = Field(default_factory=QuestionsConfig)
    teachers: list[TeacherConfig] = Field(default_factory=list, description="the teachers that write paths")
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    students: list[StudentConfig] = Field(default_factory=list, description="the students to train")
    prompt: str = Field(
        "core",
        description="what a student is asked, in training, the dev check and eval alike: core (the family's core "
        "prompt: the question, a step-by-step instruction and the answer format), bare (the question alone), or "
        "a template with {question} (question and options) and optionally {instruction} (the answer format)",
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    bench: BenchConfig = Field(default_factory=BenchConfig)

    @field_validator("prompt")
    @classmethod
    def _prompt_policy(cls, v: str) -> str:
        if v not in ("core", "bare") and "{question}" not in v:
            raise ValueError("must be core, bare, or a template containing {question}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        names, snames = [t.name for t in self.teachers], [s.name for s in self.students]
        for kind, listed in (("teacher", names), ("student", snames)):
            if dup := sorted({n for n in listed if listed.count(n) > 1}):
                raise ValueError(f"{kind} names must be unique (repeated: {', '.join(dup)})")
        unknown = sorted(set(self.bench.single_students or []) - set(snames))
        if unknown:
            raise ValueError(f"bench.single_students: not among the students ({', '.join(unknown)})")
        j = self.filter.judge
        if j.kind == "llm" and j.teacher not in names:
            raise ValueError(f"filter.judge.teacher '{j.teacher}' is not one of the teachers ({', '.join(names)})")
        return self

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir or os.path.join("runs", self.name))


def load_config(
    path: str | os.PathLike | None, overrides: list[str] | None = None, flags: dict[str, str] | None = None
) -> RunConfig:
    """Load a YAML config (or the defaults when ``path`` is None), apply overrides, validate everything.

    An error is blamed on what caused it: the file, or the override that set the field (``--set k=v: ...``;
    ``flags`` maps a dotted key to the CLI option that produced its override, e.g. ``{"train.method": "--method"}``).
    """
    import copy

    source = str(path) if path else "(defaults)"
    data: dict[str, Any] = read_config_file(Path(path)) if path is not None else {}
    original = copy.deepcopy(data)
    labels: dict[str, str] = {}
    for raw, (k, v) in zip(overrides or [], parse_overrides(overrides or []), strict=True):
        flag = (flags or {}).get(k)
        labels[k] = f"{flag} {raw.split('=', 1)[1].strip()}" if flag else f"--set {raw.strip()}"
        try:
            set_by_dotted(data, k, v)
        except (IndexError, ValueError, TypeError, AttributeError):
            raise ConfigError(f"override '{k}' does not address a field of the config") from None
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        if not labels:
            raise ConfigError(format_validation_error(e, source)) from None
        try:
            RunConfig.model_validate(original)
            file_ok = True
        except ValidationError:
            file_ok = False
        raise ConfigError(blame(e, source, file_ok, labels)) from None


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML (secrets never live in it: only environment variable names)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
