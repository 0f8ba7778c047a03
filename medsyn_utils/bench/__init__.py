"""``medsyn bench NAME``: speed benchmarks that print a ratio measured in one run.

Each benchmark lives in its own module ``medsyn_utils.bench.<name>`` with
``run(args) -> dict`` and ``OPTIONS`` (its command-line options as data); timings never go into tests.
"""

from __future__ import annotations


BENCHMARKS = {
    "sampling": "vectorised task sampler against a one-task-at-a-time loop",
    "generation": "batched generation against one note at a time",
    "scoring": "single-pass BERTScore against two bert_score.score calls",
    "gpu": "every GPU figure in one call (decode, generation, scoring, LoRA); --dry-run on CPU",
    "scaling": "the Ray engine with two actors against one, on a local Ray",
    "matcher": "symptom matcher on gold RuMedSymptomRec pairs against stem match and BERTScore",
    "evaluate": "faithfulness part of the evaluation stage: notes per second",
    "downstream": "each classifier of the downstream panel: fit time and dev/test accuracy, and the whole panel over every setting (--real-only: fits only)",
}
