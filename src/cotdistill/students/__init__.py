"""Students end to end: build (preset, local HF directory, GGUF; LoRA), prompt rendering, encoding, the one
greedy generator, save and load."""

from cotdistill.students.build import BuiltStudent, build_student, resolve_gguf
from cotdistill.students.store import load_student, save_student, trained_dir
from cotdistill.students.tokenizer import train_tokenizer

__all__ = [
    "BuiltStudent",
    "build_student",
    "load_student",
    "resolve_gguf",
    "save_student",
    "train_tokenizer",
    "trained_dir",
]
