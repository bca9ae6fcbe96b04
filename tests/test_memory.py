"""Figure 17 in miniature: the DPO step-memory measurement and its reading."""

import tempfile

import datasets
import pandas as pd
import pytest

from tulu_lib.ablations import memory


def _pair(i, prompt, chosen):
    return {"id": f"p{i}", "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": f"bad {i}"}], "source": "s"}


def test_the_reading_says_which_lever_lowers_the_peak():
    peaks = pd.DataFrame({"config": [c[0] for c in memory.MEMORY_CONFIGS],
                          "peak_rss_delta_ratio": [1.0, 0.8, 0.6, 0.5], "cuda_max_allocated_mb": [None] * 4})
    assert memory.memory_reading(peaks).startswith("Agrees. Paper: Caching reference log-probs")
    peaks["peak_rss_delta_ratio"] = [1.0, 1.1, 0.6, 0.7]
    line = memory.memory_reading(peaks)
    assert line.startswith("Partly agrees") and "separate passes 1.10×" in line and "CPU peak RSS" in line


def test_the_reference_cache_is_built_once_for_both_cached_configurations(tmp_path, monkeypatch):
    children = []

    def child(spec):
        children.append(spec)
        return {"cache_dir": "x"} if spec.get("build_cache_only") else {"peak_rss_delta_mb": 1.0,
                                                                        "cuda_max_allocated_mb": None}

    monkeypatch.setattr(memory, "_run_child", child)
    table = memory.measure_memory("model", tmp_path, max_length=48, batch_size=1, steps=1)
    builds = [s for s in children if s.get("build_cache_only")]
    assert len(builds) == 1 and builds[0]["cache"] and len(children) == 5  # 4 measured + 1 reference pass
    assert all(s["workdir"] == str(tmp_path) for s in children)  # the measured runs read the one cache
    assert table["config"].tolist() == [c[0] for c in memory.MEMORY_CONFIGS]


def test_measurement_children_run_with_glibc_default_allocator(monkeypatch):
    # a heap kept after free (the run's kernels' allocator settings) would blur the peak RSS
    from tulu_lib.core import allocator

    seen = {}

    def run(cmd, env, **_):
        seen.update(env)
        return type("Done", (), {"stdout": memory._MARK + '{"peak_rss_delta_mb": 1.0}', "returncode": 0})()

    for key, value in allocator.HEAP_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(memory.subprocess, "run", run)
    assert memory._run_child({"cache": False}) == {"peak_rss_delta_mb": 1.0}
    assert seen and not set(allocator.HEAP_ENV) & set(seen) and seen["HF_HUB_OFFLINE"] == "1"


@pytest.mark.slow
def test_memory_measurement_gives_four_configurations(tiny_path, tmp_path, monkeypatch):
    prefs = datasets.Dataset.from_list([_pair(i, f"About {i}.", "word " * 80) for i in range(2)])
    prefs.save_to_disk(str(tmp_path / "prefs"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    table = memory.measure_memory(tiny_path, data=str(tmp_path / "prefs"), max_length=48, batch_size=1,
                                      steps=1)
    assert not list((tmp_path / "tmp").iterdir())  # its checkpoints and caches are removed after
    assert table["config"].tolist() == [c[0] for c in memory.MEMORY_CONFIGS]
    assert (table["peak_rss_delta_mb"] > 0).all() and (table["weights_mb"] > 0).all()
    assert table["peak_rss_delta_ratio"].iloc[0] == 1.0
    assert table["reference_model_in_memory"].tolist() == [True, True, False, False]
    assert table["reference_forward_passes"].tolist()[2:] == [0, 0]
