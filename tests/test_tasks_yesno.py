"""Yes/no extraction and equivalence, as a table of reasoned cases.

Each row: (text, lenient, expected "yes"/"no" or None, gold, expected equivalence). Only whole words count:
"nobody", "eyes", "know", "yesterday", "Norway" never read as an answer.
"""

from __future__ import annotations

import pytest

from cotdistill.tasks import get_family

YESNO = get_family("yesno")

CASES: list[tuple[str, bool, str | None, str, bool]] = [
    # --- plain statements, every casing
    ("The answer is yes.", False, "yes", "yes", True),
    ("The answer is no.", False, "no", "no", True),
    ("The answer is Yes", False, "yes", "yes", True),
    ("The answer is No", False, "no", "no", True),
    ("The answer is YES!", False, "yes", "yes", True),
    ("The answer is NO!", False, "no", "no", True),
    ("The answer is: Yes", False, "yes", "yes", True),
    ("Answer: no", False, "no", "no", True),
    ("Answer: yes", False, "yes", "no", False),
    ("The final answer is no.", False, "no", "yes", False),
    ("The best answer is yes", False, "yes", "yes", True),
    ("#### yes", False, "yes", "yes", True),
    ("The answer is **no**.", False, "no", "no", True),
    ("**Answer:** Yes", False, "yes", "yes", True),
    ("The answer is \\boxed{yes}", False, "yes", "yes", True),
    ("The answer is \\boxed{\\text{no}}", False, "no", "no", True),
    ("The answer is (yes).", False, "yes", "yes", True),
    ('The answer is "no".', False, "no", "no", True),
    ("The answer is yes, it is.", False, "yes", "yes", True),
    ("The answer is no, it is not.", False, "no", "no", True),
    # --- true / false read as yes / no
    ("The answer is True.", False, "yes", "yes", True),
    ("The answer is false", False, "no", "no", True),
    ("The answer is FALSE.", False, "no", "yes", False),
    ("The answer is true", False, "yes", "no", False),
    # --- yes / no inside other words never count
    ("The answer is eyes.", False, None, "yes", False),
    ("The answer is nobody.", False, None, "no", False),
    ("The answer is unknown.", False, None, "no", False),
    ("The answer is Norway.", False, None, "no", False),
    ("The answer is yesterday.", False, None, "yes", False),
    ("The answer is noon.", False, None, "no", False),
    ("The answer is nothing.", False, None, "no", False),
    ("The answer is noted.", False, None, "no", False),
    ("The answer is yes-ish", False, None, "yes", False),
    ("The answer is no-brainer", False, None, "no", False),
    ("The answer is don't know", False, None, "no", False),
    ("The answer is untrue.", False, None, "no", False),
    ("The answer is nobody knows, so no.", False, "no", "no", True),
    ("The answer is nonetheless yes.", False, "yes", "yes", True),
    ("The answer is eyes-wide yes.", False, "yes", "yes", True),
    ("Nobody said no, but the answer is yes.", False, "yes", "yes", True),
    ("I know the answer is no.", False, "no", "no", True),
    ("The answer is that nobody knows.", False, None, "no", False),
    ("She knows the eyes of the storm. The answer is yes.", False, "yes", "yes", True),
    ("Nobody knows; anyone's guess.", True, None, "no", False),  # lenient: still no whole word
    ("Her eyes were blue, so yes.", True, "yes", "yes", True),
    ("The snow is white and not known to be yesterday's", True, None, "yes", False),
    # --- last statement wins
    ("The answer is no. Actually, the answer is yes.", False, "yes", "yes", True),
    ("The answer is No, because ... Actually, the answer is yes.", False, "yes", "yes", True),
    ("The answer is yes.\nOn second thought the answer is no.", False, "no", "no", True),
    ("The answer is yes.\nOn second thought the answer is no.", False, "no", "yes", False),
    ("Answer: yes\nAnswer: no", False, "no", "no", True),
    ("The answer is yes, not no.", False, "yes", "yes", True),  # first word of the last statement
    ("The answer is yes.\nThe answer is unclear.", False, "yes", "yes", True),  # last statement has no yes/no
    ("The answer is yes. No doubt about it.", False, "yes", "yes", True),
    ("No, wait. The answer is yes.", False, "yes", "yes", True),
    ("Yes, I checked. The answer is no.", False, "no", "no", True),
    # --- lenient: the last whole yes/no when no statement exists
    ("So yes.", False, None, "yes", False),
    ("So yes.", True, "yes", "yes", True),
    ("Hmm, no.", True, "no", "no", True),
    ("Yes, at first. But then no.", True, "no", "no", True),
    ("Yes, at first. But then no.", False, None, "no", False),
    ("Is a whale a fish? No. Is it a mammal? Yes.", True, "yes", "yes", True),
    ("The answer is yes. But no, wait", True, "yes", "yes", True),  # a marker beats the last word
    ("It is true that whales are mammals.", True, None, "yes", False),  # lenient reads yes/no only
    ("Whales breathe air.", True, None, "yes", False),
    ("", True, None, "yes", False),
    # --- <think> blocks and truncated outputs
    ("<think>The answer is yes</think> The answer is no.", False, "no", "no", True),
    ("<think>The answer is yes</think> The answer is no.", False, "no", "yes", False),
    ("<think>yes? no? yes.</think>\nAnswer: no", False, "no", "no", True),
    ("<think>The answer is yes", False, None, "yes", False),  # cut off mid-thought
    ("<think>The answer is yes", True, None, "yes", False),
    ("<think>The answer is yes</think> Hard to say.", False, None, "yes", False),
    ("<think>The answer is yes</think> Hard to say.", True, None, "yes", False),
    ("<think>x</think>\n<think>The answer is no</think>\nThe answer is yes", False, "yes", "yes", True),
    ("<Think>no</Think> So yes.", True, "yes", "yes", True),
    ("Maybe the answer is no...</think>\nThe answer is yes.", False, "yes", "yes", True),
    ("Maybe the answer is no...</think>", True, None, "no", False),
    ("Whales are mammals because they", False, None, "yes", False),  # truncated before the answer
    ("The answer is", False, None, "yes", False),
    ("The answer is ", True, None, "no", False),
    # --- a statement with no yes/no
    ("The answer is maybe.", False, None, "yes", False),
    ("The answer is it depends.", False, None, "no", False),
    ("The answer is 42.", False, None, "yes", False),
    ("The answer is unclear.", True, None, "yes", False),
    # --- gold in other forms
    ("The answer is yes.", False, "yes", "Yes", True),
    ("The answer is yes.", False, "yes", "YES", True),
    ("The answer is yes.", False, "yes", "true", True),
    ("The answer is yes.", False, "yes", "True", True),
    ("The answer is no.", False, "no", "False", True),
    ("The answer is no.", False, "no", "false", True),
    ("The answer is no.", False, "no", " no ", True),
    ("The answer is no.", False, "no", "no.", True),
    ("The answer is yes.", False, "yes", "no", False),
    ("The answer is no.", False, "no", "yes", False),
    ("The answer is no.", False, "no", "True", False),
    ("The answer is yes.", False, "yes", "False", False),
    # --- a few real-looking StrategyQA rationales
    ("Sharks are fish. Fish do not have lungs. The answer is no.", False, "no", "no", True),
    ("Aristotle died before laptops existed. So the answer is no.", False, "no", "no", True),
    ("A llama lives about 20 years. The answer is yes.", False, "yes", "no", False),
    ("The Pope is Catholic. Thus, the answer is: yes", False, "yes", "yes", True),
    ("Hydrogen is lighter than air, so the answer is Yes.", False, "yes", "yes", True),
    ("Paris is in France; no one doubts that. Answer: yes", False, "yes", "yes", True),
    ("Nobody can lift a car alone. The answer is No.", False, "no", "no", True),
    ("The eyes of a cat glow. The answer is yes.", False, "yes", "yes", True),
    ("Snow is cold. So the answer is no, not yes.", False, "no", "no", True),
]


@pytest.mark.parametrize(("text", "lenient", "expected", "gold", "equiv"), CASES)
def test_yesno_extraction_and_equivalence(text: str, lenient: bool, expected: str | None, gold: str, equiv: bool):
    got = YESNO.extract(text, lenient=lenient)
    assert got == expected
    assert YESNO.equivalent(got, gold) is equiv


def test_yesno_table_is_large_enough():
    assert len(CASES) >= 100
    assert len(set(CASES)) == len(CASES), "duplicate rows"


def test_yesno_empty_prediction_is_never_equivalent():
    assert YESNO.equivalent(None, "yes") is False
    assert YESNO.equivalent("", "no") is False
