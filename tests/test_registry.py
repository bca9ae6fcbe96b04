"""The benchmark registry: every benchmark is one complete object, Table 6 is covered row by row,
and one new module registered is all a benchmark needs to be evaluated, saved, resumed and scored."""

import importlib.util
import json
import math
import re
import textwrap
from pathlib import Path

import pytest

from tulu_lib.core.params import BenchmarkParams
from tulu_lib.evals import registry, suite
from tulu_lib.evals.spec import KINDS, NEEDS_JUDGE, Benchmark
from tulu_lib.generation.types import Completion

DOCS = Path(__file__).resolve().parents[1] / "docs" / "evaluation.md"


@pytest.mark.parametrize("name", list(registry.BENCHMARKS))
def test_every_benchmark_is_complete(name):
    b = registry.BENCHMARKS[name]
    assert isinstance(b, Benchmark) and b.name == name
    # its loader: the packaged copy, the hub id and split (or, with no hub copy, rows made here),
    # the converter every path goes through
    assert (b.packaged is None or callable(b.packaged)) and b.packaged_from
    assert (b.hub_id and b.hub_split) or (b.packaged is not None and not b.hub_id)
    assert callable(b.convert)
    # its prompt and scorer (a judge-scored one has the judge's scorer), what the paper reports
    assert callable(b.prompt) and callable(b.score) and b.headline and b.scorer and b.offline
    assert b.paper_name
    s = b.settings
    assert isinstance(s.shots, int) and s.shots >= 0 and isinstance(s.cot, bool) and s.kind in KINDS
    assert s.metric and s.source
    assert b.data is None or (b.data in registry.DATASETS and b.data not in registry.NOT_RUN)
    assert (name in registry.DATASETS) == (b.data is None and b.decontaminate)


def test_names_are_unique_and_a_second_registration_fails():
    assert all(name == b.name for name, b in registry.BENCHMARKS.items())
    assert not set(registry.BENCHMARKS) & set(registry.NOT_IMPLEMENTED)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.BENCHMARKS["gsm8k"])
    assert suite.TASKS is registry.BENCHMARKS  # the suite runs exactly what is registered


def test_settings_say_whose_they_are():
    """Table 24's shots, CoT and format, with the OLMES Tülu 3 dev-suite task each follows."""
    expected = {"gsm8k": (8, True, "chat", "gsm8k::tulu"), "math": (4, True, "chat", "minerva_math::tulu"),
                "ifeval": (0, False, "chat", "ifeval::tulu"),
                "humaneval": (0, False, "chat", "codex_humaneval::tulu"),
                "drop": (3, False, "text", "drop::llama3"), "mmlu_mc": (5, False, "choice", "mmlu:mc::tulu"),
                "mmlu": (0, True, "chat", "Table 24"),
                "alpaca_eval": (0, False, "chat", "alpaca_eval_v2::tulu")}
    for name, (shots, cot, kind, source) in expected.items():
        s = registry.benchmark(name).settings
        assert (s.shots, s.cot, s.kind) == (shots, cot, kind) and source in s.source, name


def test_every_table6_row_is_registered_or_says_why_not():
    assert len(registry.TABLE6_ROWS) == 12
    for column, name in registry.TABLE6_ROWS:
        if name in registry.BENCHMARKS and name not in registry.NOT_RUN:
            assert registry.BENCHMARKS[name].paper_name == column
            assert registry.not_run_reason(name) == "not run: not in eval.benchmarks of these params"
        else:
            assert registry.not_run_reason(name).startswith("not run: "), column
    for name in registry.NOT_IMPLEMENTED:
        assert registry.not_run_reason(name).startswith("not run: not implemented yet; ")
    # AlpacaEval is implemented: what it lacks offline is a judge
    assert registry.not_run_reason("alpaca_eval") == NEEDS_JUDGE
    assert NEEDS_JUDGE == "not run: needs a judge endpoint (eval.judge)"
    not_implemented = {n for _, n in registry.TABLE6_ROWS if n in registry.NOT_IMPLEMENTED}
    assert not_implemented == set()
    assert registry.not_run_reason("safety").startswith("not run: safety is the mean of 6 benchmarks")


@pytest.mark.parametrize("name", [n for n, b in registry.BENCHMARKS.items()
                                  if (b.data or n) in registry.PACKAGED])
def test_every_packaged_benchmark_loads_prompts_and_scores_offline(name):
    b = registry.BENCHMARKS[name]
    rows = registry.load_benchmark(name, limit=2)
    assert len(rows) == 2 and {"id", "prompt"} <= set(rows.column_names)
    made = b.prompt(rows[0], b.default_shots)
    if b.kind == "chat":
        assert made[-1]["role"] == "user" and len(made) == 2 * b.default_shots + 1
    elif b.kind == "text":
        assert isinstance(made, str) and made.endswith("Answer:")
    else:
        context, continuations = made
        assert isinstance(context, str) and len(continuations) == 4
    output = json.dumps([0.0] * len(made[1])) if b.kind == "choice" else ""
    if b.judge_score is None:
        assert isinstance(b.score(rows[0], output)["score"], float)


def test_the_docs_list_every_benchmark():
    text = DOCS.read_text()
    for name in [*registry.BENCHMARKS, *registry.NOT_IMPLEMENTED]:
        assert f"`{name}`" in text, name


# ------------------------------------------------------------------ one file is enough

ARITH_MODULE = textwrap.dedent('''
    """Sums (a test's benchmark): one module is all a benchmark is."""

    from tulu_lib.evals import verifiers
    from tulu_lib.evals.spec import Benchmark, Settings

    ROWS = [{"q": f"{a} + {b}", "a": str(a + b)} for a, b in ((1, 1), (3, 4), (10, 4), (7, 8))]


    def convert(row, i):
        return {"id": f"arith/{i}", "prompt": row["q"], "question": row["q"], "answer": row["a"]}


    def prompt(row, shots):
        return [{"role": "user", "content": f"What is {row['question']}?"}]


    def score(row, output):
        return {"score": float(verifiers.verify("gsm8k", output, row["answer"]))}


    ARITH = Benchmark(
        name="arith", paper_name="Sums (a test's, not the paper's)",
        settings=Settings(shots=0, cot=False, kind="chat", metric="exact match", source="this test"),
        packaged=lambda: iter(ROWS), packaged_from="inline (4)", hub_id="example/arith", hub_split="test",
        convert=convert, prompt=prompt, score=score, headline="accuracy (last number)",
        scorer="the RLVR verifier", offline="everything")
''')


@pytest.fixture
def arith(tmp_path):
    path = tmp_path / "arith.py"
    path.write_text(ARITH_MODULE)
    spec = importlib.util.spec_from_file_location("arith", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    registry.register(module.ARITH)
    try:
        yield module
    finally:
        del registry.BENCHMARKS["arith"]


class Sums:
    """Answers the sum right for even numbers, counting prompts."""

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, sampling):
        self.calls += len(prompts)
        out = []
        for p in prompts:
            a, b = map(int, re.findall(r"\d+", p[-1]["content"]))
            out.append([Completion(f"It is {a + b if (a + b) % 2 == 0 else -1}.", True, 4)])
        return out


def test_a_new_benchmark_module_is_evaluated_end_to_end(arith, tmp_path):
    gen = Sums()
    (row,) = suite.evaluate(gen, {"arith": BenchmarkParams()}, tmp_path / "out")
    assert gen.calls == 4 and row["benchmark"] == "arith" and row["n"] == 4 and row["shots"] == 0
    assert row["score"] == 50.0 and row["metric"] == "accuracy (last number)"  # right for 2 and 14
    items = [json.loads(x) for x in (tmp_path / "out" / "arith" / "items.jsonl").read_text().splitlines()]
    assert [i["id"] for i in items] == ["arith/0", "arith/1", "arith/2", "arith/3"]
    again = Sums()
    assert suite.evaluate(again, {"arith": BenchmarkParams()}, tmp_path / "out") == [row] and again.calls == 0
    # saved outputs score the same, and a local copy in the hub's schema loads through the same converter
    scored = suite.score_outputs("arith", [json.dumps({"id": i["id"], "output": i["output"]}) for i in items])
    assert scored["score"] == row["score"] and scored["missing"] == 0
    local = tmp_path / "arith.jsonl"
    local.write_text("".join(json.dumps(r) + "\n" for r in arith.ROWS[:2]))
    assert registry.load_benchmark("arith", path=str(local))["answer"] == ["2", "7"]
    assert registry.not_run_reason("arith") == "not run: not in eval.benchmarks of these params"
    assert not math.isnan(suite.average_score([row])["average"])
