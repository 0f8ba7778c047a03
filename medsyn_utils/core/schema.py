"""Column names shared between stages: the task table, the generation store, the scored dataset.

One home for the contract between stages, so a rename happens in one place.
"""

from __future__ import annotations

# Task table (stage 02, ``tasks.parquet`` / ``tasks.csv``): one row per generation task.
TASK_COLUMNS: tuple[str, ...] = (
    "task_id",          # "t000001", unique within the table
    "icd10",            # code the symptoms were drawn for (sub-code such as "J06.9", or the category)
    "category",         # three-character category, e.g. "J06"
    "code_name_ru",     # Russian name of ``icd10`` from the official МКБ-10
    "prompt_kind",      # "symptoms+example" | "symptoms" | "code"  (method: prompt(S,E), prompt(S), prompt(code))
    "prompt_variant",   # "detailed" | "patient" | "short" | "examinations" | "style"
    "symptoms",         # list[str] of sampled Russian symptoms (empty for prompt(code))
    "example_visit_id", # RuMedTop3 idx of the style example, or None
    "example_text",     # the style example's text, or None
    "example_source",   # "RuMedTop3-train" | "RuMedPrime-note-train" | "template" | None
    "sex",              # "male" | "female"
    "age",              # int
    "location",         # "city" | "countryside"
    "marital_status",   # "married" | "single"
    "smoking",          # bool
    "system_prompt",    # chat form: system message
    "user_prompt",      # chat form: user message
    "completion_prompt",# plain text for base models: a document to continue
    "seed",             # the run seed the table was drawn with
)

# Generation store (stage 03, ``generations.jsonl``): one JSON object a line.
STORE_FIELDS: tuple[str, ...] = (
    "task_id", "task_fingerprint", "model_id", "model_revision", "adapter", "backend", "decoding",
    "prompt", "response", "prompt_tokens", "completion_tokens", "finish_reason", "error",
    "seconds", "created_at",
)
FINISH_REASONS = ("stop", "length", "empty", "error")

# Scored dataset (stage 04): the published MedSyn columns first, then the kit's metrics.
PUBLISHED_COLUMNS: tuple[str, ...] = (
    "idx", "ICD-10", "generation_model", "prompt", "prior", "example", "example_source",
    "response", "symptoms", "anamnesis", "symptoms_recall", "anamnesis_precision",
)
