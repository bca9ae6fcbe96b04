"""``tulu-repro``: validate params, run the workbook, rebuild a report, open JupyterLab.

Usage::

    tulu-repro validate params/*.yaml
    tulu-repro prepare --params params/cpu.yaml        # build the embedded model once
    tulu-repro run --params params/cpu.yaml [--stages 01_data 02_sft] [--force]
                   [--out DIR] [--set sft.optim.learning_rate=1e-5]
    tulu-repro decontaminate --train allenai/tulu-3-sft-mixture --out decontaminated/sft
    tulu-repro launch sft --params params/tulu3-8b.yaml --out runs/sft   # accelerate launch
    tulu-repro plan --params params/tulu3-70b.yaml [--mfu 0.4] [--gpu-tflops 989]  # pre-flight
    tulu-repro report --run reports/cpu
    tulu-repro score --benchmark ifeval --outputs outputs.jsonl [--out DIR]
    tulu-repro synthesize --params params/cpu.yaml --out synth/ [--policy SFT_DIR]
    tulu-repro tensorboard --run reports/cpu           # training curves, live while a stage trains
    tulu-repro lab

Bad params stop everything before work starts, with exit status 2 and one message that
names the file, the key path and what is allowed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tulu_lib.core import assets
from tulu_lib.core.params import ParamsError, SourceParams
from tulu_lib.data import decontam, loader, preferences
from tulu_lib.evals import registry, suite
from tulu_lib.evals.spec import DataUnavailable
from tulu_lib.train import plan
from tulu_lib.workbook import report, runner, validate
from tulu_lib.workbook.stages import STAGE_NAMES

EXIT_BAD_PARAMS = 2


def _validate(args) -> int:
    for path in args.files:
        p = validate.load(path, args.set)
        for line in validate.warnings(p, str(path)):
            print(f"warning: {line}", file=sys.stderr)
        print(f"ok  {path}  (name={p.name}, hash={p.hash()})")
    return 0


def _prepare(args) -> int:

    params = validate.load(args.params, args.set)
    print(f"model {params.model.name} -> {assets.model_path(params.model.name)}")
    return 0


def _run(args) -> int:

    params = validate.load(args.params, args.set)
    result = runner.run(params, Path(args.params), Path(args.out) if args.out else None,
                        tuple(args.stages or ()), args.force)
    index = result.run_dir / "index.html"
    print(f"\nreport: {index}\n        (open it in a browser: file://{index})")
    if not result.ok:
        bad = {k: v for k, v in result.statuses.items() if not v.startswith(("done", "skipped"))}
        print("not finished: " + ", ".join(f"{k} {v}" for k, v in bad.items()), file=sys.stderr)
        return 1
    return 0


def _decontaminate(args) -> int:
    import datasets

    names = args.benchmarks or list(registry.PACKAGED)
    for name in names:
        registry.benchmark(name)  # unknown names fail before any work
    out = Path(args.out)
    blocker = next((d for d in (out, *out.parents) if d.exists() and not d.is_dir()), None)
    if blocker is not None:
        print(f"error: --out {out}: {blocker} is a file, not a folder", file=sys.stderr)
        return EXIT_BAD_PARAMS
    if out.exists() and not args.overwrite:  # checked again when saving; here before any work
        raise FileExistsError(f"--out {out} exists (add --overwrite to replace it)")
    spec = SourceParams(path=args.train, split=args.split, duplicate_ids=args.duplicate_ids)
    try:  # the run's loader: bad lines and rows dropped and named by file:line, duplicate ids handled
        rows, data = loader.read(args.kind, spec)
    except ValueError as exc:
        print(f"error: --train {exc}", file=sys.stderr)
        return EXIT_BAD_PARAMS
    print(data.summary())
    if not rows:
        print(f"error: --train {args.train}: no usable {data.kind} rows", file=sys.stderr)
        return EXIT_BAD_PARAMS
    index = decontam.BenchmarkIndex.build(registry.benchmark_texts(names), ngram=args.ngram)
    result = decontam.decontaminate(datasets.Dataset.from_list(rows), index, ngram=args.ngram,
                                    overlap_threshold=args.overlap, flag_threshold=args.flag,
                                    removal=args.removal, rule=args.rule, remove=not args.report_only,
                                    num_proc=args.num_proc)
    result.stats["data"] = data.to_dict()  # summary.json: what the loader dropped, and where
    out = result.save(out, overwrite=args.overwrite)
    flagged = result.flagged()
    print(f"kept {len(result.dataset):,} of {data.rows_in:,} rows; "
          f"removed {result.stats['rows_removed']:,} overlapping; "
          f"dropped {sum(data.dropped.values()):,} malformed or repeated; "
          f"{len(flagged)} (source, benchmark) pairs flagged -> {out}")
    if len(flagged):
        print(flagged.to_string(index=False))
    return 0


def _launch(args) -> int:
    from tulu_lib.train import entry, worker  # lazy: the training stack (torch, TRL) takes seconds to import

    params = validate.load(args.params, args.set)
    kind = worker.DATA[args.stage]
    data = args.data or loader.load(kind, getattr(params.data, kind), seed=params.seed).dataset
    result = entry.train(args.stage, params, model=args.model or params.model.name, data=data, out=args.out)
    print(f"{args.stage} finished: {result.checkpoint}")
    return 0


def _plan(args) -> int:

    params = validate.load(args.params, args.set)
    plans = plan.plan(params, mfu=args.mfu, gpu_tflops=args.gpu_tflops, stages=tuple(args.stages))
    print(plan.render(params, plans, args.mfu, args.gpu_tflops, source=args.params))
    problems = plan.failures(plans)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_BAD_PARAMS if problems else 0


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _report(args) -> int:
    print(f"report: {report.write_index(args.run, redraw=True)}")
    return 0


def _score(args) -> int:
    """Score a file of saved outputs; bad input (benchmark, file, --out, budget) is one line, exit 2."""
    import json

    def bad(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_PARAMS

    task = suite.TASKS.get(args.benchmark)
    if task is None:
        return bad(f"--benchmark {args.benchmark!r} is not a benchmark; scorable: {', '.join(suite.TASKS)}")
    if task.judge_score is not None:
        return bad(f"--benchmark {args.benchmark} is scored by a judge model, not from outputs alone: "
                   f"run it through 05_eval ({task.not_run_without_judge.removeprefix('not run: ')})")
    if task.kind == "choice":
        return bad(f"--benchmark {args.benchmark} is scored by the log-likelihoods of its choices, which "
                   "need the model, not saved text: run it through 05_eval (backend hf or vllm)")
    if not 0 < args.timeout_s < float("inf"):
        return bad(f"--timeout-s {args.timeout_s:g} is not allowed; use a number of seconds > 0")
    outputs = Path(args.outputs)
    if outputs.is_dir():
        return bad(f"--outputs {outputs} is a folder; give the .jsonl file of outputs")
    if args.out is not None:
        out = Path(args.out)
        blocker = next((d for d in (out, *out.parents) if d.exists() and not d.is_dir()), None)
        if blocker is not None:
            return bad(f"--out {out}: {blocker} is a file, not a folder")
        try:
            (out / args.benchmark).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return bad(f"--out {out}: {exc.strerror or exc}")
    try:
        fh = open(outputs, encoding="utf-8", errors="replace")
    except OSError as exc:
        return bad(f"--outputs {outputs}: {exc.strerror or exc}")
    print(f"scoring {args.benchmark}: {task.headline}; scorer: {task.scorer} "
          f"(settings: {task.settings.source}); rows: {args.data or task.packaged_from}", file=sys.stderr)
    with fh:
        try:
            summary = suite.score_outputs(args.benchmark, suite.output_lines(fh), args.out, args.timeout_s,
                                          data=args.data)
        except DataUnavailable as exc:
            return bad(f"{exc}; --data takes a hub id or a local copy in the hub's schema")
    print(json.dumps(suite._json_safe({**summary, "scorer": task.scorer,
                                       "settings": task.settings.source}), indent=2))
    return 0


def _synthesize(args) -> int:
    import dataclasses


    params = validate.load(args.params, args.set)
    spec = params.synthesis
    if not spec.enabled:
        raise ValueError(f"{args.params}: synthesis.enabled is false; set it there or add "
                         "--set synthesis.enabled=true")
    if spec.on_policy and not args.policy:
        print(f"no --policy: the start model {params.model.name} stands in for the SFT checkpoint")
    reused = spec.prompt_source == "reused"
    sft = loader.load_sft(params.data.sft, seed=params.seed).dataset if reused else None
    try:
        result = preferences.run(spec, policy=args.policy or params.model.name, seed=params.seed,
                                 dtype=params.model.dtype, sft=sft,
                                 engine=dataclasses.asdict(params.eval.vllm), cache_dir=args.out)
    except LookupError as exc:  # an unknown model name (assets.ModelNotFound)
        raise ValueError(f"{args.params}: synthesis: {exc}") from None
    paths = preferences.save(result, args.out)
    print(result.counts_table().to_string(index=False))
    print(preferences.agreement_line(result.agreement))
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return 0


def lab_command(extra: list[str]) -> tuple[list[str], dict[str, str]]:
    """``jupyter lab`` on the notebooks with the project's JupyterLab defaults
    (``notebooks/.jupyter/labconfig``: a double-click opens a workbook ``.py`` as a notebook, by
    jupytext's default-viewer setting; no news prompt), and its environment."""
    root = Path(__file__).resolve().parents[1]
    config = os.pathsep.join(filter(None, (str(root / "notebooks" / ".jupyter"),
                                           os.environ.get("JUPYTER_CONFIG_PATH"))))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--notebook-dir", str(root / "notebooks"), *extra]
    return cmd, {**os.environ, "PYTHONPATH": str(root), "JUPYTER_CONFIG_PATH": config}


def _lab(args) -> int:
    print("opening JupyterLab: double-click a notebook (notebooks/NN_*.py) and run it with the kernel "
          "'tulu-repro (.venv)'; run `tulu-repro run --params FILE --stages <earlier stages>` first")
    cmd, env = lab_command(args.extra)
    return subprocess.call(cmd, env=env)


def _tensorboard(args) -> int:
    logdir = Path(args.run) / "logs" / "tensorboard"
    if not logdir.is_dir():
        print(f"error: {logdir} does not exist: no stage of the run {args.run} has trained with "
              "logging.report_to: [tensorboard] yet", file=sys.stderr)
        return EXIT_BAD_PARAMS
    print(f"TensorBoard on {logdir}: http://localhost:{args.port}/ (Ctrl-C stops it)", flush=True)
    return subprocess.call([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
                            "--port", str(args.port), "--bind_all" if args.bind_all else "--host=localhost"])


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(prog="tulu-repro", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    overrides = dict(action="append", default=[], metavar="KEY=VALUE",
                     help="override a params value, e.g. sft.optim.learning_rate=1e-5")

    p = sub.add_parser("validate", help="check params files")
    p.add_argument("files", nargs="+")
    p.add_argument("--set", **overrides)
    p.set_defaults(func=_validate)

    p = sub.add_parser("prepare", help="build the embedded model once (cached)")
    p.add_argument("--params", required=True)
    p.add_argument("--set", **overrides)
    p.set_defaults(func=_prepare)

    p = sub.add_parser("run", help="execute the notebooks into reports/<run>/")
    p.add_argument("--params", required=True)
    p.add_argument("--stages", nargs="+", choices=STAGE_NAMES, metavar="STAGE",
                   help=f"stages to run (default all): {' '.join(STAGE_NAMES)}")
    p.add_argument("--force", action="store_true", help="rerun stages even if unchanged")
    p.add_argument("--out", help="run folder (default reports/<params name>)")
    p.add_argument("--set", **overrides)
    p.set_defaults(func=_run)

    p = sub.add_parser("decontaminate", help="remove training rows that overlap eval benchmarks")
    p.add_argument("--train", required=True, help="hub id, local data file, saved dataset or standin:KIND "
                   "(read as a run reads it: malformed lines and rows dropped and named by file:line)")
    p.add_argument("--kind", choices=("auto", *loader.KINDS), default="auto",
                   help="the rows' schema (default: told from the rows)")
    p.add_argument("--duplicate-ids", choices=("keep_first", "keep_all"), default="keep_first",
                   help="a row whose id an earlier row has: dropped (default) or kept; counted either way")
    p.add_argument("--split", default="train")
    p.add_argument("--benchmarks", nargs="+", metavar="NAME",
                   help="default: every benchmark with a packaged copy (others read the hub: name them)")
    p.add_argument("--out", required=True)
    p.add_argument("--ngram", type=_positive, default=8)
    p.add_argument("--overlap", type=_fraction, default=0.5,
                   help="an item matches a training document above this score (see --rule)")
    p.add_argument("--rule", choices=("release", "ngram_fraction"), default="release",
                   help="release: share of the item's tokens covered by 8-grams of one user turn")
    p.add_argument("--report-only", action="store_true", help="report the overlap, remove nothing")
    p.add_argument("--flag", type=_share, default=0.02, help="share of a benchmark's items")
    p.add_argument("--removal", choices=("overlapping", "flagged"), default="overlapping")
    p.add_argument("--num-proc", type=_positive, default=2)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_decontaminate)

    p = sub.add_parser("launch", help="train one stage as launch.* says (here, or under accelerate launch)")
    p.add_argument("stage", choices=("sft", "dpo", "reward_model", "rlvr"))
    p.add_argument("--params", required=True)
    p.add_argument("--out", required=True, help="output folder: checkpoints, final/, <stage>_result.json")
    p.add_argument("--set", **overrides)
    p.add_argument("--data", help="rows saved with save_to_disk (default: the params' data section)")
    p.add_argument("--model", help="starting checkpoint (default: the params' model; dpo: the SFT model, "
                   "rlvr: the DPO model)")
    p.set_defaults(func=_launch)

    p = sub.add_parser("plan", help="pre-flight: memory per GPU, steps, tokens, GPU-hours per training stage")
    p.add_argument("--params", required=True)
    p.add_argument("--stages", nargs="+", choices=("sft", "dpo", "rlvr"), default=["sft", "dpo", "rlvr"])
    p.add_argument("--mfu", type=_fraction, default=0.4, help="model FLOPs utilisation (default 0.4)")
    p.add_argument("--gpu-tflops", type=float,
                   help="peak TFLOPS per GPU (default: launch.gpu's bf16 dense peak)")
    p.add_argument("--set", **overrides)
    p.set_defaults(func=_plan)

    p = sub.add_parser("report", help="redraw a run's figures from its tables and rebuild its index.html")
    p.add_argument("--run", required=True)
    p.set_defaults(func=_report)

    p = sub.add_parser("score", help="score saved outputs as 05_eval does; prints one JSON object")
    p.add_argument("--benchmark", required=True, metavar="NAME", help="e.g. gsm8k, math, ifeval, humaneval")
    p.add_argument("--outputs", required=True, metavar="FILE.jsonl",
                   help='one {"id": ..., "output": ...} per line (humaneval: may add "outputs": [...])')
    p.add_argument("--data", metavar="PATH",
                   help="the benchmark's rows: a hub id or a local copy in the hub's schema "
                   "(.jsonl/.json/.parquet/.csv, a saved dataset); default: the packaged copy")
    p.add_argument("--out", help="also write <out>/<benchmark>/items.jsonl and summary.json")
    p.add_argument("--timeout-s", type=float, default=5.0, metavar="SECONDS",
                   help="each item's scoring budget (eval.score_timeout_s): over it, or if the scorer "
                        "raises, the item scores 0 and is counted (default 5)")
    p.set_defaults(func=_score)

    p = sub.add_parser("synthesize", help="persona prompts + synthetic preference pairs (synthesis.* params)")
    p.add_argument("--params", required=True)
    p.add_argument("--out", required=True,
                   help="folder for preferences.jsonl, prompts.jsonl, counts.json, ...")
    p.add_argument("--policy",
                   help="the SFT checkpoint on_policy adds to the pool (default: the start model)")
    p.add_argument("--set", **overrides)
    p.set_defaults(func=_synthesize)

    p = sub.add_parser("tensorboard", help="open TensorBoard on a run's training curves")
    p.add_argument("--run", required=True, help="the run folder, e.g. reports/cpu")
    p.add_argument("--port", type=int, default=6006)
    p.add_argument("--bind-all", action="store_true", help="serve on every interface, not only localhost")
    p.set_defaults(func=_tensorboard)

    p = sub.add_parser("lab", help="open JupyterLab on the notebooks")
    p.add_argument("extra", nargs=argparse.REMAINDER)
    p.set_defaults(func=_lab)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C stops a run even when the parent ignored SIGINT (a background job of a script,
        # an earlier library in the launching process): the child inherits SIG_IGN, and Python
        # then installs no KeyboardInterrupt handler of its own
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return args.func(args)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_PARAMS
    except (FileNotFoundError, FileExistsError, KeyError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished stages are kept; run the same command to resume",
              file=sys.stderr)
        # the interrupted kernel client's pending tasks log "Kernel died" tracebacks at exit
        logging.disable(logging.CRITICAL)
        return 130


if __name__ == "__main__":
    sys.exit(main())
