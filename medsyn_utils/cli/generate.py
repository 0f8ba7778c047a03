"""``medsyn generate``: write notes for a task table into the resumable store."""

from __future__ import annotations

import argparse
import json
import sys
from medsyn_utils.generate.models import DEFAULT_MODEL
from medsyn_utils.tasks.table import load_task_table
from medsyn_utils.generate.stage import generate_store
from medsyn_utils.cli.ray_options import add_ray_options


def _generate_cli(args: argparse.Namespace) -> int:
    tasks = load_task_table(args.tasks)
    report = generate_store(
        tasks, args.out, model=args.model, backend=args.backend, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
        repetition_penalty=args.repetition_penalty, seed=args.seed, device=args.device,
        dtype=args.dtype, prompt_form=args.prompt_form, progress=not args.no_progress,
        min_new_tokens=args.min_new_tokens, stop=args.stop, max_tasks=args.max_tasks,
        device_map=args.device_map, adapter=args.adapter, base_url=args.base_url,
        concurrency=args.concurrency, timeout=args.timeout, max_retries=args.max_retries,
        empty_retries=args.empty_retries, max_failed_share=args.max_failed_share,
        force=args.force, engine=args.engine, ray_address=args.ray_address, actors=args.actors,
        gpus_per_actor=args.gpus_per_actor, cpus_per_actor=args.cpus_per_actor,
        tensor_parallel_size=args.tensor_parallel_size)
    data = report.as_dict()
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        if report.licence:
            print(f"Model {report.model_id} is used under the {report.licence}.", file=sys.stderr)
        print(f"{report.generated} notes generated, {report.already_done} already in "
              f"{report.store_path}, {report.pending_left} left; "
              f"{report.tokens_per_s:.1f} tokens/s, {report.notes_per_min:.1f} notes/min")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """``medsyn generate`` (stage 03)."""
    parser = subparsers.add_parser("generate", help="generate one note per task into a JSONL store")
    parser.add_argument("--tasks", required=True, help="task table (.parquet, .csv or .jsonl)")
    parser.add_argument("--out", required=True, help="generation store (.jsonl); resumed if present")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"{DEFAULT_MODEL}, a local folder, a hub id, or the served name (openai)")
    parser.add_argument("--backend", default="transformers", help="transformers | openai | vllm")
    parser.add_argument("--batch-size", type=int, default=8, help="notes per forward pass / request group")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="length limit of a note")
    parser.add_argument("--min-new-tokens", type=int, default=0, help="force at least this many tokens")
    parser.add_argument("--temperature", type=float, default=0.7, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass")
    parser.add_argument("--repetition-penalty", type=float, default=1.0, help="1.0 = none")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    parser.add_argument("--device-map", default=None, help="e.g. auto: spread a large model (accelerate)")
    parser.add_argument("--prompt-form", default="auto", help="auto | chat | completion")
    parser.add_argument("--stop", action="append", default=None,
                        help="stop string (repeatable); default: blank line for completion")
    parser.add_argument("--max-tasks", type=int, default=0, help="generate at most N pending tasks (0 = all)")
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder on top of --model")
    parser.add_argument("--base-url", default=None,
                        help="openai backend: endpoint, or several separated by commas (a pool); "
                             "else OPENAI_BASE_URL")
    parser.add_argument("--concurrency", type=int, default=4, help="openai backend: parallel requests")
    parser.add_argument("--timeout", type=float, default=120.0, help="openai backend: seconds per request")
    parser.add_argument("--max-retries", type=int, default=5, help="openai backend: retries on 429/5xx")
    parser.add_argument("--empty-retries", type=int, default=2,
                        help="ask again this often for an empty note (endpoints, sampling)")
    parser.add_argument("--max-failed-share", type=float, default=0.05,
                        help="fail when more than this share of notes failed (0.05 = 5 %%)")
    parser.add_argument("--force", action="store_true",
                        help="set an existing store aside (renamed with the time) and start afresh")
    add_ray_options(parser, "model replicas", actors=1)
    parser.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm backend: GPUs per model")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(func=_generate_cli)
