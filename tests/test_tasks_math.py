"""Math extraction and equivalence, as a table of reasoned cases (text -> extracted answer -> equal to gold?).

Each row: (text, lenient, expected extraction or None, gold, expected equivalence). The expected extraction is
the canonical form ``MathFamily.extract`` promises: the final statement's number with currency, thousands
commas, units and ``\\text{}`` dropped; LaTeX expressions kept as LaTeX (math-verify compares them).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from cotdistill.tasks import get_family
from cotdistill.tasks.math import find_boxed, normalize

MATH = get_family("math")

CASES: list[tuple[str, bool, str | None, str, bool]] = [
    # --- answer markers
    ("The answer is 42.", False, "42", "42", True),
    ("The final answer is 42", False, "42", "42", True),
    ("The final answer is: 42", False, "42", "42", True),
    ("The best answer is 11", False, "11", "11", True),
    ("The correct answer is 9.", False, "9", "9", True),
    ("Answer: 17", False, "17", "17", True),
    ("answer: 17", False, "17", "17", True),
    ("Answer is 8", False, "8", "8", True),
    ("Step 1: 6 * 12 = 72.\n#### 72", False, "72", "72", True),
    ("####72", False, "72", "72", True),
    ("So the total is \\boxed{72}.", False, "72", "72", True),
    ("\\fbox{13}", False, "13", "13", True),
    ("The answer is: $\\boxed{16}$", False, "16", "16", True),
    ("**Answer:** 42", False, "42", "42", True),
    ("The answer is **42**.", False, "42", "42", True),
    ("She answered 5 questions. The answer is 6.", False, "6", "6", True),
    ("The answer is 42.", False, "42", "24", False),
    # --- negatives and decimals
    ("Answer: -5", False, "-5", "-5", True),
    ("The answer is −3.", False, "-3", "-3", True),  # unicode minus
    ("The answer is -0.5", False, "-0.5", "-1/2", True),
    ("The answer is 0.5", False, "0.5", "1/2", True),
    ("The answer is .5", False, ".5", "0.5", True),
    ("The answer is 6.00", False, "6.00", "6", True),
    ("The answer is 6.", False, "6", "6", True),
    ("The answer is 1.000", False, "1.000", "1", True),
    ("The answer is 2.5", False, "2.5", "5/2", True),
    ("The answer is 0.333", False, "0.333", "1/3", False),  # rounded is not equal
    ("The answer is 3.14", False, "3.14", "3.14159", False),
    ("The answer is 5", False, "5", "-5", False),
    # --- LaTeX fractions
    ("The answer is \\frac{1}{2}.", False, "\\frac{1}{2}", "0.5", True),
    ("The answer is $\\frac{3}{4}$.", False, "\\frac{3}{4}", "0.75", True),
    ("\\boxed{\\dfrac{1}{2}}", False, "\\dfrac{1}{2}", "1/2", True),
    ("\\boxed{\\tfrac{2}{3}}", False, "\\tfrac{2}{3}", "2/3", True),
    ("The answer is \\(\\frac{7}{2}\\).", False, "\\frac{7}{2}", "3.5", True),
    ("Thus \\boxed{\\frac{-3}{4}}", False, "\\frac{-3}{4}", "-0.75", True),
    ("\\boxed{\\frac{2}{4}}", False, "\\frac{2}{4}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac{1}{3}}", False, "\\frac{1}{3}", "0.33", False),
    ("The answer is 3/4.", False, "3/4", "0.75", True),
    ("The answer is 6/8", False, "6/8", "\\frac{3}{4}", True),
    ("\\boxed{\\frac{\\pi}{2}}", False, "\\frac{\\pi}{2}", "\\pi/2", True),
    ("The answer is $\\pi$", False, "\\pi", "\\pi", True),
    ("\\boxed{\\sqrt{8}}", False, "\\sqrt{8}", "2\\sqrt{2}", True),
    ("The answer is 2\\sqrt{2}.", False, "2\\sqrt{2}", "\\sqrt{8}", True),
    ("\\boxed{\\sqrt{2}}", False, "\\sqrt{2}", "\\sqrt{3}", False),
    ("\\boxed{x^2+2x+1}", False, "x^2+2x+1", "(x+1)^2", True),
    # --- thousands commas
    ("The answer is 1,234.", False, "1234", "1234", True),
    ("so \\boxed{1,234}", False, "1234", "1,234", True),
    ("The answer is 1,234,567.", False, "1234567", "1234567", True),
    ("The answer is 12,000.50", False, "12000.50", "12000.5", True),
    ("The answer is 100,000 people.", False, "100000", "100000", True),
    ("The answer is 1,000", False, "1000", "1,000", True),
    ("The answer is 10,000.", False, "10000", "1000", False),
    # --- currency
    ("The answer is $1,200.", False, "1200", "1200", True),
    ("The answer is $12.50", False, "12.50", "12.5", True),
    ("The answer is 12.50 dollars.", False, "12.50", "$12.50", True),
    ("The answer is \\$25.", False, "25", "25", True),
    ("The answer is \\boxed{\\$25}", False, "25", "$25", True),
    ("The answer is €30.", False, "30", "30", True),
    ("The answer is £7.99", False, "7.99", "7.99", True),
    ("The answer is 40 USD.", False, "40", "40", True),
    ("The answer is 75 cents.", False, "75", "75", True),
    ("The answer is $5.", False, "5", "$5.00", True),
    ("The answer is $5.", False, "5", "$50", False),
    # --- units and percent
    ("The answer is 45 km.", False, "45", "45", True),
    ("The answer is 5 km/h.", False, "5", "5", True),
    ("The answer is 32 wrappers.", False, "32", "32", True),
    ("The answer is 90^\\circ.", False, "90", "90", True),
    ("The answer is 90°.", False, "90", "90", True),
    ("The answer is \\boxed{12\\text{ cm}}", False, "12", "12", True),
    ("The answer is 50%.", False, "50%", "50", True),
    ("The answer is 50\\%.", False, "50%", "50%", True),
    ("The answer is 25%.", False, "25%", "50", False),
    ("The answer is x = 7.", False, "7", "7", True),
    # --- a calculation as the final statement: its result
    ("The answer is 7 - 2 = 5.", False, "5", "5", True),
    ("The answer is 3 * 4 = 12 cookies.", False, "12", "12", True),
    ("The answer is 12 because 3 * 4 = 12.", False, "12", "12", True),
    ("The answer is 100 - 68 = 32 more wrappers.", False, "32", "32", True),
    # --- last statement wins, not the first
    ("The answer is 3 apples. Wait, the answer is 4.", False, "4", "4", True),
    ("The answer is 3.\nOn reflection, the answer is 4.", False, "4", "4", True),
    ("The answer is 3.\nOn reflection, the answer is 4.", False, "4", "3", False),
    ("\\boxed{3} and later \\boxed{4}", False, "4", "4", True),
    ("The answer is 4. \\boxed{5}", False, "5", "5", True),
    ("\\boxed{5}. The answer is 4.", False, "4", "4", True),
    ("The answer is 12. I double-checked: 3 + 9 = 12.", False, "12", "12", True),  # no marker after the answer
    ("First 2 + 3 = 5, then 5 * 4 = 20. The answer is 20.", False, "20", "20", True),
    ("Answer: 9\nAnswer: 10", False, "10", "10", True),
    # --- <think> blocks and truncated outputs
    ("<think>The answer is 3</think> The answer is 4.", False, "4", "4", True),
    ("<think>maybe 3? no...</think>\n\\boxed{4}", False, "4", "4", True),
    ("<think>The answer is 3</think> So 4 it is.", False, None, "3", False),  # only the thought states 3
    ("<think>The answer is 3</think> So 4 it is.", True, "4", "4", True),
    ("<think>Let me compute 6 * 7 = 42. The answer is", False, None, "42", False),  # cut off mid-thought
    ("<think>6 * 7 = 42", True, None, "42", False),  # unclosed think block: no answer even leniently
    ("<THINK>x</THINK>The answer is 8", False, "8", "8", True),
    ("Hmm, the answer is 3? Let me check.</think> The answer is 4.", False, "4", "4", True),  # template opened it
    ("Hmm, the answer is 3.</think>", True, None, "3", False),  # thought, then nothing: no answer
    ("First, 6 * 7 = 42. Then we subtract", False, None, "42", False),  # truncated before any answer
    ("The answer is", False, None, "5", False),
    ("The answer is \\boxed{", False, None, "5", False),  # unbalanced box
    ("The answer is twelve.", False, None, "12", False),
    ("", False, None, "0", False),
    # --- lenient: the last number when no marker exists
    ("I think it's 12", False, None, "12", False),
    ("I think it's 12", True, "12", "12", True),
    ("So 3 + 4 = 7.", True, "7", "7", True),
    ("He had 15 + 18 = 33 caps.\nNow 100 - 68 = 32 more wrappers.", True, "32", "32", True),
    ("In total she paid $1,250 for 5 chairs", True, "5", "1250", False),  # lenient takes the LAST number
    ("Total: 3 boxes of 12 is 36", True, "36", "36", True),
    ("No numbers here at all.", True, None, "0", False),
    ("The answer is 7. Then 8 more.", True, "7", "7", True),  # a marker beats the last number
    # --- gold in other forms; pred None or empty
    ("The answer is 1200", False, "1200", "$1,200", True),
    ("The answer is 5", False, "5", "5.0", True),
    ("The answer is 5", False, "5", " 5 ", True),
    ("The answer is 2023.", False, "2023", "2023", True),
    ("The answer is 1/0", False, "1/0", "0", False),  # division by zero is never equal
]


@pytest.mark.parametrize(("text", "lenient", "expected", "gold", "equiv"), CASES)
def test_math_extraction_and_equivalence(text: str, lenient: bool, expected: str | None, gold: str, equiv: bool):
    got = MATH.extract(text, lenient=lenient)
    assert got == expected
    assert MATH.equivalent(got, gold) is equiv


def test_math_table_is_large_enough():
    assert len(CASES) >= 100
    assert len(set(CASES)) == len(CASES), "duplicate rows"


@pytest.mark.parametrize(
    ("pred", "gold", "equiv"),
    [(None, "5", False), ("", "5", False), ("  ", "0", False), ("5", "5", True), ("\\frac{10}{4}", "2.5", True)],
)
def test_math_equivalent_direct(pred: str | None, gold: str, equiv: bool):
    assert MATH.equivalent(pred, gold) is equiv


def test_find_boxed_balances_braces():
    assert find_boxed("a \\boxed{\\frac{1}{2}} b \\boxed{3}") == ["\\frac{1}{2}", "3"]
    assert find_boxed("\\boxed{unclosed") == []


def test_normalize_is_idempotent_on_its_outputs():
    for _, _, expected, _, _ in CASES:
        if expected is not None:
            assert normalize(expected) == expected


def test_math_verify_off_the_main_thread_matches_main_thread():
    """math-verify uses signal.alarm for timeouts (main thread only); worker threads must still give answers."""
    rows = [(t, lenient, gold) for t, lenient, _, gold, _ in CASES]

    def judge(row: tuple[str, bool, str]) -> tuple[str | None, bool]:
        text, lenient, gold = row
        got = MATH.extract(text, lenient=lenient)
        return got, MATH.equivalent(got, gold)

    on_main = [judge(r) for r in rows]
    with ThreadPoolExecutor(max_workers=4) as pool:
        off_main = list(pool.map(judge, rows))
    assert off_main == on_main
    # the cases that only math-verify can decide are among them, and came out true off the main thread too
    assert off_main[[r[0] for r in rows].index("\\boxed{\\sqrt{8}}")] == ("\\sqrt{8}", True)
    assert off_main[[r[0] for r in rows].index("\\boxed{x^2+2x+1}")] == ("x^2+2x+1", True)


def test_marker_spans_are_verbatim_text():
    """Callers (e.g. COMPACT's answer-token spans) locate each span in the text: it must be a verbatim slice."""
    from cotdistill.tasks.base import marker_spans
    from test_tasks_choice import CASES as CHOICE_CASES
    from test_tasks_label import CASES as LABEL_CASES
    from test_tasks_yesno import CASES as YESNO_CASES

    texts = [c[0] for c in CASES + CHOICE_CASES + LABEL_CASES + YESNO_CASES]
    n = 0
    for text in texts:
        for pos, span in marker_spans(text):
            assert text.index(span, pos) >= pos
            n += 1
    assert n > 300
