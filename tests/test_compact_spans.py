"""COMPACT's answer spans (issue 21): on the answer token, never on a word that happens to match it; the semantic
mask; the rationale closed with the answer sentence and gold; the target located in a templated response."""

from __future__ import annotations

import pytest

from compact_harness import synthetic_data, train_tokenizer
from cotdistill.records import Question
from cotdistill.training.methods.compact.spans import (
    analyse_target,
    answer_char_span,
    char_to_token_span,
    closed_text,
    content_mask,
    locate,
)

CHOICES = ["a cat", "Paris", "10 days", "1 day"]


def q(task: str, gold: str, **kw) -> Question:
    return Question(id="q", task=task, question="?", gold=gold, **kw)


def span_text(text: str, question: Question) -> tuple[str, int] | None:
    s = answer_char_span(text, question)
    return None if s is None else (text[s[0] : s[1]], s[0])


@pytest.mark.parametrize(
    "text",
    [
        "A bird is a animal. The answer is (A).",
        "a a a. So the answer is A.",
        "Option a looks wrong, (A) fits. The answer is A) a cat.",
        "Answer: [A]",
    ],
)
def test_choice_span_is_the_letter_not_the_article(text):
    got = span_text(text, q("choice", "A", choices=CHOICES))
    assert got is not None
    letter, start = got
    assert letter == "A" and start > text.lower().rindex("answer")  # after the last marker: the letter itself


def test_choice_without_marker_needs_the_letter_form_or_the_option_text():
    cq = q("choice", "A", choices=CHOICES)
    assert answer_char_span("a a a a, nothing here", cq) is None  # the article never counts
    text = "Cats are small. (A) is right, a fine choice."
    letter, start = span_text(text, cq)
    assert letter == "A" and text[start - 1] == "("
    text = "It must be a cat, I think."
    assert span_text(text, cq)[0] == "a cat"
    # the option text of "1 day" does not land inside "10 days" (gold D)
    assert answer_char_span("We wait 10 days.", q("choice", "D", choices=CHOICES)) is None


def test_choice_wrong_final_letter_has_no_span():
    cq = q("choice", "B", choices=CHOICES)
    assert answer_char_span("Maybe (B). The answer is (C).", cq) is None
    assert span_text("The answer is (B) Paris.", cq)[0] == "B"


def test_math_and_word_spans_land_on_the_answer_token():
    text = "3 + 4 = 7 apples. Then 7 * 6 = 42.\nThe answer is 42 apples."
    got, start = span_text(text, q("math", "42"))
    assert got == "42" and start > text.index("The answer")
    assert span_text("The answer is 7 - 2 = 5.", q("math", "5"))[0] == "5"
    assert span_text("Danny has 100 - 68 = 32 more.", q("math", "32.0"))[0] == "32"
    assert answer_char_span("It is 5. The answer is 6.", q("math", "5")) is None
    assert span_text("Birds fly. So the answer is Yes, clearly.", q("yesno", "yes"))[0] == "Yes"
    assert span_text("The answer is neither, so neutral.", q("label", "neutral"))[0] == "neither"


def test_closed_text_keeps_the_rationale_and_states_gold():
    text = "We compute 18 - 11 = 17.\nThe answer is 16."
    closed, span = closed_text(text, q("math", "6"))
    assert closed == "We compute 18 - 11 = 17.\nThe answer is 6." and closed[span[0] : span[1]] == "6"
    closed, span = closed_text("no marker at all", q("choice", "B", choices=CHOICES))
    assert closed == "no marker at all\nThe answer is (B)." and closed[span[0] : span[1]] == "B"


def test_content_mask_drops_punctuation_markers_and_the_answer_statement():
    text = "So 3 + 4 = 7 .\nThe answer is 7."
    offsets = [(m, m + 1) for m in range(len(text))]  # one token per character
    mask = content_mask(text, offsets, text.index("The answer"))
    kept = "".join(text[i] for i, m in enumerate(mask) if m)
    assert kept == "So347"


@pytest.fixture(scope="module")
def tokenizer():
    qs, ps = synthetic_data(20, {"a": 2})
    return train_tokenizer([x.question for x in qs.values()] + [p.text for p in ps])


def test_analyse_target_tokens(tokenizer):
    mq = q("math", "25")
    good = analyse_target(tokenizer, "Tom has 20 and 5 more: 25.\nThe answer is 25.", mq)
    assert good.answer is not None and good.closed_ids is None
    assert tokenizer.decode(good.ids[good.answer[0] : good.answer[1]]).strip() == "25"
    assert tokenizer.decode([good.ids[good.last]]) == "."
    assert not any(good.content[good.answer[0] :])  # the answer statement is outside the mask
    bad = analyse_target(tokenizer, "Tom has 20 and 5 more: 24.\nThe answer is 24.", mq)
    assert bad.answer is None and bad.closed_ids is not None
    assert bad.closed_ids[: bad.common] == bad.ids[: bad.common] and bad.common >= len(bad.ids) - 3
    a0, a1 = bad.closed_answer
    assert tokenizer.decode(bad.closed_ids[a0:a1]).strip() == "25"


def test_locate_and_char_to_token_span():
    assert locate([9, 9, 1, 2, 3, 7], [1, 2, 3]) == (2, 0)
    assert locate([9, 5, 2, 3, 7], [1, 2, 3]) == (1, 1)  # the first token merged with the template's
    assert locate([4, 5, 6], [1, 2, 3]) is None
    offsets = [(0, 3), (3, 7), (7, 8), (8, 11), (0, 0)]
    assert char_to_token_span(offsets, (4, 8)) == (1, 3)
    assert char_to_token_span(offsets, (20, 22)) is None
