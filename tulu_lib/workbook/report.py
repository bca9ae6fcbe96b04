"""The run's front page: ``reports/<run>/index.html`` from saved results alone.

Reads ``manifest.json``, the stage records and the tables and figures the stages saved,
and writes one page: first the paper's findings this run tested (reproduced, not detected or
contradicted, each with n, effect, interval, p and the detectable difference; also saved as
``tables/findings.csv``), the run summary (params, scale, model, hardware, time per stage,
manifest link), each stage's one status (:func:`~tulu_lib.workbook.stages.stage_statuses`; a
failed stage shows its error and the cell that raised), then the paper's tables and
figures in paper order — each with the paper's finding, our output inline and our
one-line reading (``Stage.reading``), or the params switch that produces it — and every
other table and figure by stage. Only stages whose status is "done" show results, so none
built on an upstream that has failed or changed since. Figures are embedded (the page is
one shareable file); links to notebooks, CSVs and SVGs are relative, so a copied run
folder renders the same anywhere.

Usage::

    tulu-repro report --run reports/cpu
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from tulu_lib.core.io import read_json
from tulu_lib.reporting import findings
from tulu_lib.reporting.paper import PAPER_ITEMS, item_status
from tulu_lib.workbook.stages import STAGES, draw_figure, stage_statuses

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2rem auto;padding:0 1rem;color:#1d2330;line-height:1.45}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #dde;padding-bottom:.2rem;margin-top:2.2rem}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.6rem .9rem;margin:1rem 0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #d6d9e0;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#f1f3f7} .done{color:#17803d} .failed{color:#b3261e;font-weight:600}
.muted{color:#6b7280} figure{margin:1.2rem 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.92rem;color:#374151;margin-top:.3rem} code{background:#f3f4f6;padding:0 .2rem}
section.item{border:1px solid #e3e6ee;border-radius:6px;padding:.3rem 1rem .6rem;margin:1.2rem 0}
.paper{color:#4b3f72} .reading{background:#eef6ff;border-left:4px solid #3b82f6;padding:.4rem .8rem}
.wide{max-width:100%;overflow-x:auto}
"""


def _fmt_seconds(s) -> str:
    if s is None:
        return ""
    s = float(s)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _records(run_dir: Path) -> dict[str, dict]:
    return {spec.name: rec for spec in STAGES
            if (rec := read_json(run_dir / "stages" / f"{spec.name}.json", "ignored")) is not None}


def _stage_rows(run_dir: Path, records: dict[str, dict], statuses: dict[str, str]) -> str:
    rows = []
    for spec in STAGES:
        rec, state = records.get(spec.name, {}), statuses.get(spec.name, "not run")
        attempt = rec.get("last_attempt") or {}
        if state == "done":
            status, elapsed = "<span class=done>done</span>", rec.get("elapsed_s")
            link = (f"<a href='{spec.name}.html'>notebook</a>"
                    if (run_dir / f"{spec.name}.html").exists() else "")
        elif state == "failed":
            status = (f"<span class=failed>failed</span>: {html.escape(attempt.get('error', ''))}"
                      f"{' (cell ' + str(attempt['cell']) + ')' if attempt.get('cell') else ''}")
            link = f"<a href='{attempt['notebook']}'>failed notebook</a>"
            elapsed = attempt.get("elapsed_s")
        else:
            status, elapsed, link = f"<span class=muted>{html.escape(state)}</span>", None, ""
        rows.append(f"<tr><td>{spec.name}</td><td>{html.escape(spec.title)}</td><td>{status}</td>"
                    f"<td>{_fmt_seconds(elapsed)}</td><td>{link}</td></tr>")
    return ("<table><tr><th>stage</th><th>what</th><th>status</th><th>time</th><th></th></tr>"
            + "".join(rows) + "</table>")


def _figure(run_dir: Path, rel: str, caption: str) -> str:
    data = base64.b64encode((run_dir / rel).read_bytes()).decode()
    svg = Path(rel).with_suffix(".svg").as_posix()
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(Path(rel).stem)}'>"
            f"<figcaption>{html.escape(caption)} <a href='{rel}'>png</a> · <a href='{svg}'>svg</a>"
            "</figcaption></figure>")


def _table(run_dir: Path, rel: str, caption: str, rows: int = 30) -> str:
    df = pd.read_csv(run_dir / rel)
    more = f" (first {rows} of {len(df)} rows)" if len(df) > rows else ""
    return (f"<p><b>{html.escape(caption or Path(rel).stem)}</b>{more} <a href='{rel}'>csv</a></p>"
            + "<div class=wide>"  # a training log has 40-54 columns: it scrolls, not the page
            + df.head(rows).to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.4g}")
            + "</div>")


def _render(run_dir: Path, rel: str, caption: str) -> str:
    return _figure(run_dir, rel, caption) if rel.endswith(".png") else _table(run_dir, rel, caption)


def _done(records: dict[str, dict], statuses: dict[str, str]) -> dict[str, dict]:
    """The records of the stages whose status is "done", in paper order."""
    return {name: rec for name, rec in records.items() if statuses[name] == "done"}


def _captions(done: dict[str, dict]) -> dict[str, str]:
    """``figures/<name>.png`` / ``tables/<name>.csv`` → caption, from the done stages."""
    out = {}
    for rec in done.values():
        out |= {f"figures/{k}.png": v for k, v in (rec.get("figures") or {}).items()}
        out |= {f"tables/{k}.csv": v for k, v in (rec.get("tables") or {}).items()}
    return out


def _item_status(run_dir: Path, item, statuses: dict[str, str]) -> str:
    """"produced" when the item's stage is done and saved it; else why it is not shown."""
    status = statuses.get(item.notebook, "not run")
    if status == "done" or not (run_dir / item.output).exists():
        return item_status(run_dir, item)
    return f"not shown: {item.notebook} {status}"


def _anchor(ref: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in ref.lower())


def _paper_items(run_dir: Path, done: dict[str, dict], statuses: dict[str, str],
                 captions: dict[str, str]) -> str:
    readings = {k: v for rec in done.values() for k, v in (rec.get("readings") or {}).items()}
    parts = []
    for item in PAPER_ITEMS:
        parts.append(f"<section class=item id='{_anchor(item.ref)}'><h3>{html.escape(item.ref)} · "
                     f"{html.escape(item.title)}</h3>")
        if item.finding:
            parts.append(f"<p class=paper><b>Paper:</b> {html.escape(item.finding)}</p>")
        status = _item_status(run_dir, item, statuses)
        if status == "produced":
            if item.ref in readings:
                parts.append(f"<p class=reading><b>Ours:</b> {html.escape(readings[item.ref])}</p>")
            for rel in (item.output, *item.also):
                if (run_dir / rel).exists():
                    parts.append(_render(run_dir, rel, captions.get(rel, "")))
        elif status.startswith("not shown"):
            parts.append(f"<p class=muted>{html.escape(status)}.</p>")
        else:
            parts.append(f"<p class=muted>Not run here: set <code>{html.escape(item.switch)}</code> in the "
                         f"params and run {item.notebook}.</p>")
        parts.append("</section>")
    return "\n".join(parts)


def _outputs(run_dir: Path, done: dict[str, dict], statuses: dict[str, str],
             captions: dict[str, str]) -> str:
    """Every other table and figure of the done stages, by stage."""
    shown = {rel for item in PAPER_ITEMS if _item_status(run_dir, item, statuses) == "produced"
             for rel in (item.output, *item.also)}
    parts = []
    for spec in STAGES:
        rec = done.get(spec.name)
        if rec is None:
            continue
        rels = [f"figures/{k}.png" for k in rec.get("figures") or {}] + \
               [f"tables/{k}.csv" for k in rec.get("tables") or {}]
        rels = [r for r in rels if r not in shown and (run_dir / r).exists()]
        if rels:
            parts.append(f"<h3>{html.escape(spec.title)}</h3>")
            parts += [_render(run_dir, rel, captions.get(rel, "")) for rel in rels]
    return "\n".join(parts)


def _paper_index(run_dir: Path, statuses: dict[str, str]) -> str:
    rows = []
    for item in PAPER_ITEMS:
        status = _item_status(run_dir, item, statuses)
        where = (f"<a href='#{_anchor(item.ref)}'>below</a> · <a href='{item.output}'>{item.output}</a>"
                 if status == "produced" else f"<span class=muted>{html.escape(status)}</span>")
        rows.append(f"<tr><td>{item.ref}</td><td>{html.escape(item.title)}</td>"
                    f"<td>{item.notebook}</td><td><code>{item.switch}</code></td><td>{where}</td></tr>")
    return ("<table><tr><th>paper</th><th>what</th><th>notebook</th><th>params</th><th>output</th></tr>"
            + "".join(rows) + "</table>")


def _findings(run_dir: Path, done: dict[str, dict]) -> str:
    """The findings table (:mod:`tulu_lib.reporting.findings`) from the done stages' records, saved
    as ``tables/findings.csv``; empty where no stage recorded one (a run before any finished)."""
    rows = {k: {c: math.nan if v is None else v for c, v in row.items()}
            for rec in done.values() for k, row in (rec.get("findings") or {}).items()}
    if not rows:
        return "<p class=muted>No stage has recorded a finding yet.</p>"
    table = findings.findings_table(rows)
    (run_dir / "tables").mkdir(exist_ok=True)
    table.drop(columns="key").to_csv(run_dir / "tables" / "findings.csv", index=False)
    return (f"<p><b>{findings.summary_line(table)}</b> at 95% (each: n, the effect with its 95% interval, "
            "p, and the smallest difference the sample could detect; small-scale, a 135M model) "
            "<a href='tables/findings.csv'>csv</a></p><div class=wide>"
            + table.drop(columns="key").to_html(index=False, border=0, na_rep="",
                                                 float_format=lambda v: f"{v:.3g}")
            + "</div>")


def redraw_figures(run_dir: Path, record: dict) -> list[str]:
    """Draw a stage's figures again from the run's saved tables (``figure_specs`` of its record:
    :meth:`~tulu_lib.workbook.stages.Stage.figure`); returns their names."""
    names = []
    for name, spec in (record.get("figure_specs") or {}).items():
        plt.close(draw_figure(Path(run_dir), name, spec))
        names.append(name)
    return names


def write_index(run_dir: str | Path, redraw: bool = False) -> Path:
    """Write ``index.html``; with ``redraw``, first draw every figure of the finished stages again
    from the run's tables (``tulu-repro report``)."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} is missing: is {run_dir} a tulu-repro run?")
    man = read_json(manifest_path, "the run summary is left blank") or {}
    records = _records(run_dir)
    statuses = stage_statuses(records)
    done = _done(records, statuses)
    if redraw:
        drawn = sum(len(redraw_figures(run_dir, rec)) for rec in done.values())
        print(f"[tulu-repro] {drawn} figure(s) drawn again from the run's tables", flush=True)
    captions = _captions(done)
    params = man.get("params", {})
    model = params.get("model", {})
    hw = man.get("hardware", {})
    total = sum(float(r.get("elapsed_s") or 0) for r in records.values())
    git = man.get("git", {})
    summary = f"""
<table>
<tr><th>run</th><td>{html.escape(str(man.get('run')))}</td></tr>
<tr><th>scale</th><td>{html.escape(str(man.get('scale')))}</td></tr>
<tr><th>model</th><td><code>{html.escape(str(model.get('name')))}</code>
 {('standing in for <code>' + html.escape(model['stands_in_for']) + '</code>')
  if model.get('stands_in_for') else ''}</td></tr>
<tr><th>params</th><td><code>{html.escape(str(man.get('params_file')))}</code>
 (hash {man.get('params_hash')})</td></tr>
<tr><th>code</th><td>git {str(git.get('commit'))[:12]}{' (dirty tree)' if git.get('dirty') else ''}</td></tr>
<tr><th>hardware</th><td>{hw.get('cpu_count')} CPUs, {hw.get('memory_gb')} GB RAM,
 GPUs: {html.escape(', '.join(hw.get('gpus') or []) or 'none')}</td></tr>
<tr><th>stage time</th><td>{_fmt_seconds(total)} in all</td></tr>
<tr><th>provenance</th><td><a href='manifest.json'>manifest.json</a> ·
 <a href='params.json'>params.json</a></td></tr>
</table>"""
    small = ("" if "paper" in str(man.get("scale", "")) else
             "<div class=note>Small-scale reproduction: a different, much smaller model and "
             "stand-in data. Numbers here test the recipe's code and its direction of effects, "
             "not the paper's absolute scores.</div>")
    page = f"""<!doctype html><html><head><meta charset='utf-8'>
<title>Tülu 3 workbook · {html.escape(str(man.get('run')))}</title><style>{CSS}</style></head><body>
<h1>Tülu 3, reproduced: run <code>{html.escape(str(man.get('run')))}</code></h1>
<p class=muted>Lambert et al. 2024, <i>Tülu 3: Pushing Frontiers in Open Language Model
Post-Training</i> (arXiv 2411.15124)</p>{small}
<h2>The paper's findings in this run</h2>{_findings(run_dir, done)}
<h2>Run</h2>{summary}
<h2>Stages</h2>{_stage_rows(run_dir, records, statuses)}
<h2>The paper's tables and figures in this run</h2>{_paper_index(run_dir, statuses)}
{_paper_items(run_dir, done, statuses, captions)}
<h2>Everything else the stages saved</h2>
<p class=muted>Notebook pages (linked in the stage table) show how each was computed.</p>
{_outputs(run_dir, done, statuses, captions)}
</body></html>"""
    out = run_dir / "index.html"
    out.write_text(page)
    return out
