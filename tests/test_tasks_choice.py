"""Multiple-choice extraction and equivalence, as a table of reasoned cases.

Each row: (text, question key, lenient, expected letter or None, gold, expected equivalence). The question key
picks the options the text is read against (``None``: no question, any letter A-J is allowed).
"""

from __future__ import annotations

import pytest

from cotdistill.records import Question
from cotdistill.tasks import get_family

CHOICE = get_family("choice")

QUESTIONS = {
    "city": Question(
        id="c", task="choice", question="Capital of France?", choices=["Berlin", "Paris", "Rome", "Madrid"], gold="B"
    ),
    "days": Question(
        id="d",
        task="choice",
        question="How long does it take?",
        choices=["1 day", "10 days", "a week", "I do not know", "none of the above"],
        gold="B",
    ),
    "ab": Question(id="ab", task="choice", question="Which?", choices=["yes", "no"], gold="A"),
    None: None,
}

CASES: list[tuple[str, str | None, bool, str | None, str, bool]] = [
    # --- the forms of a letter
    ("The answer is (B).", "city", False, "B", "B", True),
    ("The answer is B.", "city", False, "B", "B", True),
    ("The answer is B", "city", False, "B", "B", True),
    ("The answer is B)", "city", False, "B", "B", True),
    ("The answer is [D]", "city", False, "D", "D", True),
    ("The answer is D)", "city", False, "D", "D", True),
    ("The answer is B: Paris", "city", False, "B", "B", True),
    ("The answer is B, Paris.", "city", False, "B", "B", True),
    ("The answer is: B. Paris", "city", False, "B", "B", True),
    ("The answer is option B.", "city", False, "B", "B", True),
    ("The answer is choice C", "city", False, "C", "C", True),
    ("The best answer is D: Madrid", "city", False, "D", "D", True),
    ("The correct answer is (A)", "city", False, "A", "A", True),
    ("Answer: (C)", "city", False, "C", "C", True),
    ("Answer: C", "city", False, "C", "C", True),
    ("The final answer is (D).", "city", False, "D", "D", True),
    ("The answer is **B**", "city", False, "B", "B", True),
    ("**Answer:** (B)", "city", False, "B", "B", True),
    ("The answer is \\boxed{B}", "city", False, "B", "B", True),
    ("The answer is \\boxed{(B)}", "city", False, "B", "B", True),
    ("The answer is $\\boxed{\\text{C}}$", "city", False, "C", "C", True),
    ("The answer is (B) Paris.", "city", False, "B", "B", True),
    ("The answer is Paris (B).", "city", False, "B", "B", True),
    # --- lower case: bracketed, or the whole statement; never an English article
    ("Answer: (c)", "city", False, "C", "C", True),
    ("the answer is (b)", "city", False, "B", "B", True),
    ("The answer is b.", "city", False, "B", "B", True),
    ("The answer is [d]", "city", False, "D", "D", True),
    ("The answer is a city in France.", "city", False, None, "B", False),
    ("The answer is a good one: Paris.", "city", False, "B", "B", True),  # "a" is an article; Paris is B
    # --- the option's text instead of its letter
    ("The answer is Paris.", "city", False, "B", "B", True),
    ("The answer is paris", "city", False, "B", "B", True),
    ("The answer is Madrid!", "city", False, "D", "D", True),
    ("The answer is Rome.", "city", False, "C", "B", False),
    ("The answer is London.", "city", False, None, "B", False),
    ("The answer is 10 days.", "days", False, "B", "B", True),  # longest option text wins over "1 day"
    ("The answer is 1 day.", "days", False, "A", "A", True),
    ("The answer is a week", "days", False, "C", "C", True),
    ("The answer is I do not know", "days", False, "D", "D", True),
    ("The answer is none of the above.", "days", False, "E", "E", True),
    ("The answer is (B) 10 days", "days", False, "B", "B", True),
    ("The answer is (E).", "days", False, "E", "E", True),
    # --- letters outside the options
    ("The answer is (E).", "city", False, None, "B", False),
    ("The answer is F.", "city", False, None, "B", False),
    ("The answer is (C).", "ab", False, None, "A", False),
    ("The answer is (B).", "ab", False, "B", "B", True),
    ("The answer is (J).", None, False, "J", "J", True),  # no question: any letter A-J
    ("The answer is (K).", None, False, None, "K", False),
    ("The answer is I.", "city", False, None, "B", False),  # "I" is no option of a 4-option question
    ("The answer is I think B.", "city", False, "B", "B", True),
    # --- last statement wins
    ("I think (A) is wrong. The answer is (C).", "city", False, "C", "C", True),
    ("The answer is (C). Actually the answer is (A).", "city", False, "A", "A", True),
    ("The answer is (C).\nWait, the answer is (B).", "city", False, "B", "B", True),
    ("The answer is (C).\nWait, the answer is (B).", "city", False, "B", "C", False),
    ("Answer: A\nAnswer: D", "city", False, "D", "D", True),
    ("The answer is (B). Option (A) is a distractor.", "city", False, "B", "B", True),
    ("The answer is (D).\nThe answer is London.", "city", False, "D", "D", True),  # an empty last statement
    # --- no answer statement
    ("Berlin is in Germany, Paris is in France.", "city", False, None, "B", False),
    ("(A) is wrong, (B) fits.", "city", False, None, "B", False),
    ("(A) is wrong, (B) fits.", "city", True, "B", "B", True),  # lenient: the last bracketed letter
    ("Options (A) and (B) look plausible; (B) fits.", "city", True, "B", "B", True),
    ("A. Berlin is wrong.\nB. Paris is right.", "city", True, "B", "B", True),
    ("A. Berlin is wrong.\nB. Paris is right.", "city", False, None, "B", False),
    ("I pick (C) for now but (E) later", "city", True, "C", "C", True),  # (E) is not an option here
    ("The capital is in France.", "city", True, None, "B", False),
    ("A man walked by.", "city", True, None, "A", False),  # a sentence that starts with the article
    ("The answer is", "city", False, None, "B", False),
    ("", "city", True, None, "B", False),
    # --- <think> blocks and truncated outputs
    ("<think>The answer is (A)</think>The answer is (B).", "city", False, "B", "B", True),
    ("<think>The answer is (A)</think>The answer is (B).", "city", False, "B", "A", False),
    ("<think>(A)? (B)?</think>\nAnswer: (C)", "city", False, "C", "C", True),
    ("<think>The answer is (A)", "city", False, None, "A", False),  # cut off mid-thought
    ("<think>The answer is (A)", "city", True, None, "A", False),
    ("<think>hmm</think>", "city", True, None, "A", False),
    ("<think>The answer is (A)</think> I am not sure.", "city", False, None, "A", False),
    ("<think>The answer is (A)</think> I am not sure.", "city", True, None, "A", False),
    ("Let us compare the cities one by one. Berlin is", "city", False, None, "A", False),
    # --- no question given: letters only
    ("The answer is (B).", None, False, "B", "B", True),
    ("The answer is C.", None, False, "C", "C", True),
    ("The answer is Paris.", None, False, None, "B", False),
    ("Answer: (h)", None, False, "H", "H", True),
    ("The answer is (A)", None, False, "A", "B", False),
    # --- gold in other forms
    ("The answer is (B).", "city", False, "B", "(B)", True),
    ("The answer is (B).", "city", False, "B", "b", True),
    ("The answer is (B).", "city", False, "B", "B.", True),
    ("The answer is (B).", "city", False, "B", "(b)", True),
    ("The answer is (B).", "city", False, "B", " B ", True),
    ("The answer is (B).", "city", False, "B", "C", False),
    ("The answer is (D).", "city", False, "D", "(A)", False),
    ("The answer is A.", "ab", False, "A", "A", True),
    ("The answer is yes.", "ab", False, "A", "A", True),  # option text "yes"
    ("The answer is no.", "ab", False, "B", "A", False),
    ("Answer: (A)", "ab", False, "A", "B", False),
    ("The answer is (a)", "ab", False, "A", "A", True),
    ("The answer is [B].", "ab", False, "B", "b", True),
    ("The answer is B)", "days", False, "B", "B", True),
    ("The answer is (E) none of the above", "days", False, "E", "E", True),
    ("The answer is C. A week.", "days", False, "C", "C", True),
    ("The answer is: D", "days", False, "D", "D", True),
    ("#### B", "city", False, "B", "B", True),
    ("#### (C)", "city", False, "C", "C", True),
    ("The answer is B.\n\nExplanation: Berlin (A) is in Germany.", "city", False, "B", "B", True),
]


@pytest.mark.parametrize(("text", "qkey", "lenient", "expected", "gold", "equiv"), CASES)
def test_choice_extraction_and_equivalence(
    text: str, qkey: str | None, lenient: bool, expected: str | None, gold: str, equiv: bool
):
    got = CHOICE.extract(text, QUESTIONS[qkey], lenient=lenient)
    assert got == expected
    assert CHOICE.equivalent(got, gold) is equiv


def test_choice_table_is_large_enough():
    assert len(CASES) >= 100
    assert len(set(CASES)) == len(CASES), "duplicate rows"


def test_canonical_gold_reads_letters_and_option_text():
    q = QUESTIONS["city"]
    assert CHOICE.canonical_gold("(b)") == "B"
    assert CHOICE.canonical_gold("B.") == "B"
    assert CHOICE.canonical_gold("Paris", q) == "B"
    assert CHOICE.canonical_gold("c") == "C"


def test_render_question_lists_options_with_letters():
    text = CHOICE.render_question(QUESTIONS["city"])
    assert text.endswith("(A) Berlin\n(B) Paris\n(C) Rome\n(D) Madrid")
    assert CHOICE.format_answer("B") == "The answer is (B)."
    assert CHOICE.extract(CHOICE.format_answer("B"), QUESTIONS["city"]) == "B"
