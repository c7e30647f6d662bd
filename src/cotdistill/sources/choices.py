"""Options written inside a question's text (``Answer Choices:`` / ``Options:`` blocks), split out into a list.

Datasets such as MCC-KD's CommonsenseQA dev set and BIG-Bench Hard keep the options in the question text
(``"... Answer Choices:\\nA. annoy\\nB. eat meat\\n..."``); a :class:`~cotdistill.records.Question` holds them in
``choices`` (the choice family renders them itself), so importers and sources split them out here.
"""

from __future__ import annotations

import re

from cotdistill.tasks.choice import LETTERS

# the header may end the question's own line: "What could cats do if they were taller? Answer Choices:\nA. annoy"
_HEADER = re.compile(r"(?:^|(?<=\s))(?:answer\s+choices|choices|options)\s*:", re.IGNORECASE)
# one option per line: "A. text", "(A) text", "A) text"
_LINE = re.compile(r"^\s*(?:\(([A-J])\)|([A-J])[.)])\s*(\S.*?)\s*$")
# all options on one line: "(A) annoy (B) eat meat (C) open doors"
_INLINE = re.compile(r"\(([A-J])\)\s*")


def _block_options(tail: str) -> tuple[list[str], str] | None:
    """Options of the lines at the start of ``tail`` (letters A, B, C... in order) and the text left after them."""
    lines = tail.split("\n")
    opts: list[str] = []
    used = 0
    for k, line in enumerate(lines):
        m = _LINE.match(line)
        if m:
            if len(opts) >= len(LETTERS) or (m.group(1) or m.group(2)) != LETTERS[len(opts)]:
                return None
            opts.append(m.group(3))
            used = k + 1
        elif line.strip() and opts:
            break
        elif line.strip():
            return None
    return (opts, "\n".join(lines[used:]).strip()) if len(opts) >= 2 else None


def _inline_options(tail: str) -> list[str] | None:
    first = tail.strip().split("\n", 1)[0]
    parts = _INLINE.split(first)
    if len(parts) < 5 or parts[0].strip():  # "", "A", text, "B", text at least
        return None
    letters, texts = parts[1::2], [t.strip() for t in parts[2::2]]
    if letters != list(LETTERS[: len(letters)]) or not all(texts):
        return None
    return texts


def split_choices(text: str) -> tuple[str, list[str]] | None:
    """``(question text without the block, options in letter order)``, or None when ``text`` holds no block.

    The last ``Answer Choices:`` / ``Choices:`` / ``Options:`` header followed by at least two options lettered
    A, B, C... wins; text after the options (rare) stays with the question.
    """
    for m in reversed(list(_HEADER.finditer(text))):
        head, tail = text[: m.start()].rstrip(), text[m.end() :]
        block = _block_options(tail)
        if block is not None:
            opts, rest = block
        else:
            inline = _inline_options(tail)
            if inline is None:
                continue
            opts, rest = inline, tail.strip().partition("\n")[2].strip()
        question = head + (f"\n{rest}" if rest else "")
        if question.strip():
            return question.strip(), opts
    return None


def choice_gold(label: str, choices: list[str]) -> str | None:
    """The gold letter of ``label`` among ``choices``: a letter (``C``, ``(C)``, ``c.``) within the options, or an
    option's exact text (case-insensitive); None when it names none of them."""
    g = label.strip()
    bare = g.strip("().").strip().upper()
    if len(bare) == 1 and bare in LETTERS:
        return bare if LETTERS.index(bare) < len(choices) else None
    hits = [i for i, c in enumerate(choices) if c.strip().lower() == g.lower()]
    return LETTERS[hits[0]] if len(hits) == 1 else None
