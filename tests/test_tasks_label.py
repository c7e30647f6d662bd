"""NLI label extraction and equivalence, as a table of reasoned cases.

Each row: (text, lenient, expected label or None, gold, expected equivalence). Labels are canonical
``entailment`` / ``neutral`` / ``contradiction``; the synonyms ANLI-style rationales use (true / neither /
false, yes / maybe / no, "it is not possible to tell", "cannot be determined") map onto them.
"""

from __future__ import annotations

import pytest

from cotdistill.tasks import get_family

LABEL = get_family("label")

CASES: list[tuple[str, bool, str | None, str, bool]] = [
    # --- canonical labels, every casing
    ("The answer is entailment.", False, "entailment", "entailment", True),
    ("The answer is neutral.", False, "neutral", "neutral", True),
    ("The answer is contradiction.", False, "contradiction", "contradiction", True),
    ("The answer is Entailment", False, "entailment", "entailment", True),
    ("The answer is NEUTRAL", False, "neutral", "neutral", True),
    ("The answer is **Contradiction**", False, "contradiction", "contradiction", True),
    ("**Answer:** neutral", False, "neutral", "neutral", True),
    ("Answer: entailment", False, "entailment", "entailment", True),
    ("The final answer is: contradiction", False, "contradiction", "contradiction", True),
    ("#### neutral", False, "neutral", "neutral", True),
    ("The answer is \\boxed{entailment}", False, "entailment", "entailment", True),
    ('The answer is "neutral".', False, "neutral", "neutral", True),
    ("The answer is (contradiction).", False, "contradiction", "contradiction", True),
    ("The answer is entailment.", False, "entailment", "neutral", False),
    ("The answer is neutral.", False, "neutral", "contradiction", False),
    ("The answer is contradiction.", False, "contradiction", "entailment", False),
    # --- synonyms: true / neither / false and kin
    ("The answer is true.", False, "entailment", "entailment", True),
    ("The answer is True", False, "entailment", "entailment", True),
    ("The answer is yes.", False, "entailment", "entailment", True),
    ("The answer is entails.", False, "entailment", "entailment", True),
    ("The answer is: entailed", False, "entailment", "entailment", True),
    ("The answer is the premise entails the hypothesis.", False, "entailment", "entailment", True),
    ("The answer is neither.", False, "neutral", "neutral", True),
    ("The answer is Neither", False, "neutral", "neutral", True),
    ("The answer is unknown", False, "neutral", "neutral", True),
    ("The answer is undetermined.", False, "neutral", "neutral", True),
    ("The answer is maybe", False, "neutral", "neutral", True),
    ("The answer is it is not possible to tell.", False, "neutral", "neutral", True),
    ("The answer is: it is not possible to tell", False, "neutral", "neutral", True),
    ("The answer is not possible to tell", False, "neutral", "neutral", True),
    ("The answer is cannot be determined", False, "neutral", "neutral", True),
    ("The answer is false.", False, "contradiction", "contradiction", True),
    ("The answer is False", False, "contradiction", "contradiction", True),
    ("The answer is no.", False, "contradiction", "contradiction", True),
    ("The answer is: contradicts", False, "contradiction", "contradiction", True),
    ("The answer is contradictory.", False, "contradiction", "contradiction", True),
    ("The answer is the hypothesis contradicts the premise.", False, "contradiction", "contradiction", True),
    ("The answer is true.", False, "entailment", "contradiction", False),
    ("The answer is false.", False, "contradiction", "entailment", False),
    ("The answer is neither.", False, "neutral", "entailment", False),
    # --- a longer phrase beats a word inside it ("not possible to tell" is neutral, not "no"/"not")
    ("The answer is it is not possible to tell, so no verdict.", False, "neutral", "neutral", True),
    ("The answer is neutral, not entailment.", False, "neutral", "neutral", True),  # first label of the statement
    ("The answer is contradiction (false).", False, "contradiction", "contradiction", True),
    # --- label words inside other words never count
    ("The answer is neutrality.", False, None, "neutral", False),
    ("The answer is nothing.", False, None, "contradiction", False),
    ("The answer is non-entailment", False, None, "neutral", False),  # 2-way label: neither of ours
    ("The answer is untrue-ish", False, None, "contradiction", False),
    ("The answer is unknowns", False, None, "neutral", False),
    ("The answer is truest", False, None, "entailment", False),
    ("The answer is falsehood", False, None, "contradiction", False),
    ("The answer is noted.", False, None, "contradiction", False),
    ("The answer is trueness.", False, None, "entailment", False),
    # --- last statement wins
    ("The answer is entailment. Actually, the answer is neutral.", False, "neutral", "neutral", True),
    (
        "The answer is neutral.\nOn reflection the answer is contradiction.",
        False,
        "contradiction",
        "contradiction",
        True,
    ),
    ("The answer is neutral.\nOn reflection the answer is contradiction.", False, "contradiction", "neutral", False),
    ("Answer: true\nAnswer: false", False, "contradiction", "contradiction", True),
    ("The answer is entailment.\nThe answer is hard.", False, "entailment", "entailment", True),
    ("It seems true at first. The answer is contradiction.", False, "contradiction", "contradiction", True),
    ("The answer is false. Entailment would need more.", False, "contradiction", "contradiction", True),
    # --- lenient: the last label word when no statement exists
    ("The premise contradicts the hypothesis.", False, None, "contradiction", False),
    ("The premise contradicts the hypothesis.", True, "contradiction", "contradiction", True),
    ("So the relation is entailment.", True, "entailment", "entailment", True),
    ("It could be true, but it is not possible to tell.", True, "neutral", "neutral", True),
    ("At first I said neutral, then contradiction.", True, "contradiction", "contradiction", True),
    ("The premise says a man runs.", True, None, "neutral", False),
    ("The answer is neutral. It might be false though", True, "neutral", "neutral", True),  # marker wins
    ("", True, None, "neutral", False),
    # --- <think> blocks and truncated outputs
    ("<think>The answer is entailment</think> The answer is neutral.", False, "neutral", "neutral", True),
    ("<think>The answer is entailment</think> The answer is neutral.", False, "neutral", "entailment", False),
    ("<think>true? false?</think>\nAnswer: neither", False, "neutral", "neutral", True),
    ("<think>The answer is entailment", False, None, "entailment", False),  # cut off mid-thought
    ("<think>The answer is entailment", True, None, "entailment", False),
    ("<think>The answer is entailment</think> I cannot say.", False, None, "entailment", False),
    ("<think>The answer is entailment</think> I cannot say.", True, None, "entailment", False),
    ("<think>a</think> The premise contradicts it.", True, "contradiction", "contradiction", True),
    ("The premise says the man is outside, and the hypothesis", False, None, "neutral", False),  # truncated
    ("The answer is", False, None, "neutral", False),
    ("The answer is 42.", False, None, "neutral", False),
    ("The answer is a dog.", False, None, "neutral", False),
    # --- gold in other forms (ANLI's numeric labels are mapped by importers, not here)
    ("The answer is entailment.", False, "entailment", "Entailment", True),
    ("The answer is entailment.", False, "entailment", "true", True),
    ("The answer is entailment.", False, "entailment", "yes", True),
    ("The answer is neutral.", False, "neutral", "Neither", True),
    ("The answer is neutral.", False, "neutral", "it is not possible to tell", True),
    ("The answer is neutral.", False, "neutral", "maybe", True),
    ("The answer is contradiction.", False, "contradiction", "False", True),
    ("The answer is contradiction.", False, "contradiction", "no", True),
    ("The answer is contradiction.", False, "contradiction", " contradiction ", True),
    ("The answer is contradiction.", False, "contradiction", "CONTRADICTION", True),
    ("The answer is neutral.", False, "neutral", "false", False),
    ("The answer is entailment.", False, "entailment", "neither", False),
    ("The answer is contradiction.", False, "contradiction", "true", False),
    # --- real-looking ANLI rationales
    (
        "The premise says he was born in 1950, so he is not 20. The answer is contradiction.",
        False,
        "contradiction",
        "contradiction",
        True,
    ),
    ("Nothing in the text says where she lives. The answer is neutral.", False, "neutral", "neutral", True),
    ("The text states the film won an Oscar. The answer is entailment.", False, "entailment", "entailment", True),
    ("Nobody is mentioned by name. So the answer is: neither", False, "neutral", "neutral", True),
    ("The premise directly supports it; the answer is true.", False, "entailment", "entailment", True),
    ("Since the dates conflict, the answer is false.", False, "contradiction", "contradiction", True),
    ("Not stated either way. The answer is it is not possible to tell", False, "neutral", "neutral", True),
    ("The claim contradicts the premise. The answer is contradiction", False, "contradiction", "neutral", False),
    ("Entails? Perhaps. The answer is Entailment.", False, "entailment", "entailment", True),
]


@pytest.mark.parametrize(("text", "lenient", "expected", "gold", "equiv"), CASES)
def test_label_extraction_and_equivalence(text: str, lenient: bool, expected: str | None, gold: str, equiv: bool):
    got = LABEL.extract(text, lenient=lenient)
    assert got == expected
    assert LABEL.equivalent(got, gold) is equiv


def test_label_table_is_large_enough():
    assert len(CASES) >= 100
    assert len(set(CASES)) == len(CASES), "duplicate rows"


def test_label_empty_prediction_is_never_equivalent():
    assert LABEL.equivalent(None, "neutral") is False
    assert LABEL.equivalent("", "neutral") is False
