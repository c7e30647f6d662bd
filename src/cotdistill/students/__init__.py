"""Students: build a local HF model, a GGUF file or a from-scratch preset (with its own BPE tokenizer); LoRA."""

from cotdistill.students.build import BuiltStudent, build_student, resolve_gguf, save_student, train_tokenizer

__all__ = ["BuiltStudent", "build_student", "resolve_gguf", "save_student", "train_tokenizer"]
