"""The benchmarks, one module each: every module defines its :class:`~tulu_lib.evals.spec.Benchmark`
object(s), which :mod:`tulu_lib.evals.registry` imports and lists.

Usage::

    from tulu_lib.evals.tasks.gsm8k import GSM8K
"""
