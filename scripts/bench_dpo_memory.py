"""Figure 17, measured: peak memory of a DPO training step, with and without the reference cache,
with chosen/rejected forwarded concatenated (TRL's way) or separately (open-instruct's).

The measurement is :func:`tulu_lib.ablations.memory.measure_memory` (each configuration in a fresh
subprocess; process peak RSS on CPU, ``torch.cuda.max_memory_allocated`` on a GPU); the 03_dpo
notebook runs the same function when ``dpo.measure_memory`` is set. This script prints the
table for a model and data source of your choice. ``weights_mb`` is the parameter bytes held:
the policy, plus the reference model when there is no cache. Seconds per step on a shared CPU
are only indicative.

Usage::

    .venv/bin/python scripts/bench_dpo_memory.py [--model smollm2-135m-instruct] [--out fig17.csv]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the table as CSV here")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data", default="standin:preferences", help="preferences (a SourceParams path)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    from tulu_lib.ablations.memory import measure_memory
    from tulu_lib.core.assets import model_path

    model = model_path(args.model)  # build the registry model once, before the children race for it
    rows = measure_memory(model, data=args.data, max_length=args.max_length, batch_size=args.batch_size,
                          steps=args.steps)
    print(f"DPO step memory, {args.model}, max_length {args.max_length}, batch {args.batch_size}, "
          f"{args.steps} steps, device {rows['device'][0]}")
    columns = ["config", "weights_mb", "peak_rss_delta_mb", "peak_rss_delta_ratio", "cuda_max_allocated_mb",
               "cuda_max_allocated_ratio", "reference_forward_passes", "pairs_at_max_length",
               "seconds_per_step"]
    print(rows[columns].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
