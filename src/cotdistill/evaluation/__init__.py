"""Evaluation of students: answering questions (shared with the dev check), metrics, ensembles."""

from cotdistill.evaluation.answering import Answered, answer_questions, student_prompt
from cotdistill.evaluation.ensembles import logprob_pick, vote
from cotdistill.evaluation.metrics import compute_metrics, metrics_table

__all__ = ["Answered", "answer_questions", "compute_metrics", "logprob_pick", "metrics_table", "student_prompt", "vote"]
