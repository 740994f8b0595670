"""The report: one document, in Markdown and HTML, from the folders of a report's sweeps.

:func:`write_report` reads what ``experiments/report.py`` ran (each sweep's folder:
``results.csv``, ``latency.csv``, ``model_fit.csv``, the figures the sweep drew) and writes
``report.md`` and ``report.html`` next to them, every figure embedded by its relative path
and every table computed from the CSVs (never from memory), so a report can be redrawn from
its folder at any time (``python -m experiments.plots.report REPORT_DIR``; with
``--readme README.md`` it also rewrites the README's report block from it, the figures
copied into ``docs/report/``: how the README's results are made).

A document is a list of blocks (heading, paragraph, table, image), rendered twice: GitHub
Markdown and plain HTML (tables by tabulate in both).

Sections, each present when its sweep is: throughput against cores with the SCR model and
the comparison of SCR with each baseline beyond the spread (``scaling``), throughput
against skew, latency at stated loads, the lock's transfer-cost sensitivity
(``sensitivity``), the lock-holder preemption stalls before and after quota-aware locking
(``stalls``), and the MLFFR search's own bias and resolution (a simulation,
``experiments.analysis.search_model``).

Caveat: the comparisons say "beyond the spread" only where the min-max ranges of the two
points' searches do not overlap, a conservative reading of three searches each; with one
search per point (``--quick``) nothing is beyond a spread, and the report says so.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from experiments.analysis.repeats import aggregate, differ, spread
from experiments.analysis.search_model import HEADERS as SEARCH_HEADERS
from experiments.analysis.search_model import Shape, measure
from experiments.analysis.tables import equivalence_mark, relative_to_no_loss
from experiments.plots.cores import MODEL_FIT_CSV
from experiments.runtime.results import read_csv

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
#: The report's sweeps, by the name of their folder under the report's.
SCALING, SENSITIVITY, STALLS, LOSS = "scaling", "sensitivity", "stalls", "loss"


@dataclass
class Document:
    """Blocks of a document: ("h", level, text), ("p", text), ("table", headers, rows),
    ("img", path, caption)."""

    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, headers: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", headers, rows))

    def img(self, path: str, caption: str) -> None:
        self.blocks.append(("img", path, caption))

    def markdown(self) -> str:
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append(f"{'#' * block[1]} {block[2]}")
            elif kind == "p":
                out.append(block[1])
            elif kind == "table":
                out.append(tabulate(block[2], headers=block[1], tablefmt="github",
                                    disable_numparse=True))
            else:
                out.append(f"![{block[2]}]({block[1]})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
               "</title><style>body{font-family:sans-serif;max-width:70em;margin:auto}"
               "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
               "img{max-width:100%}</style></head><body>"]
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
            elif kind == "p":
                out.append(f"<p>{html.escape(block[1])}</p>")
            elif kind == "table":
                out.append(tabulate(block[2], headers=block[1], tablefmt="html",
                                    disable_numparse=True))
            else:
                out.append(f"<figure><img src='{html.escape(block[1])}' alt=''>"
                           f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"


def sweep_dir(report_dir: Path, name: str) -> Path | None:
    """The (latest) folder of sweep ``name`` in the report, or None if it did not run."""
    folders = sorted(p for p in (Path(report_dir) / name).glob("*") if p.is_dir())
    return folders[-1] if folders else None


def _points(run_dir: Path) -> list[dict]:
    return aggregate(read_csv(run_dir / "results.csv"))


def _label(point: dict) -> str:
    name = point["strategy"]
    if (point.get("transfer_work_us") or "") != "":
        name += f" ({float(point['transfer_work_us']):g} µs)"
    if str(point.get("lock_quota_aware", "")).lower() == "true":
        name += " quota-aware"
    return name


def _pps(point: dict) -> str:
    if point.get("error") and not point.get("throughputs"):
        return "error"
    return f"{float(point['throughput_pps']):.0f}"


def points_table(doc: Document, points: list[dict]) -> None:
    """Every point: median, range, searches, faithful, equivalent (``yes``: strictly, in
    every search; ``modulo gaps``: consistent, some accepted trial lost a few packets at a
    queue and the states lack exactly their updates; ``NO``), confirmed, and for RSS++ the
    buckets its median search's reported trial moved."""
    moved = any(p.get("strategy") == "rsspp" for p in points)
    rows = [[p["nf"], _label(p), p["cores"], f"{float(p['skew']):g}", _pps(p),
             spread(p) or "-", f"{p.get('repeats', 1)}" + (
                 f" ({p['errors']} failed)" if int(p.get("errors") or 0) else ""),
             "yes" if p.get("faithful") is True else "NO",
             equivalence_mark(p),
             "yes" if p.get("confirmed") is True else "no",
             *([p.get("migrations") or "-" if p["strategy"] == "rsspp" else ""] if moved
               else [])] for p in points]
    doc.table(["nf", "strategy", "cores", "skew", "MLFFR pps (median)", "range",
               "searches", "faithful", "equivalent", "confirmed",
               *(["buckets moved"] if moved else [])], rows)


def comparison_table(doc: Document, points: list[dict], baselines: Iterable[str],
                     subject: str = "scr") -> None:
    """``subject`` against each baseline at every (skew, cores): the ratio of medians and
    whether the two ranges are apart."""
    by_key = {(p["strategy"], str(p.get("lock_quota_aware", "")), float(p["skew"]),
               int(float(p["cores"]))): p for p in points}
    rows = []
    for (strategy, _aware, skew, cores), scr in sorted(by_key.items(),
                                                        key=lambda kv: kv[0][2:]):
        if strategy != subject:
            continue
        for base in baselines:
            # The plain baseline (a lock without the quota-aware option).
            other = next((p for (s, a, k, c), p in by_key.items()
                          if s == base and k == skew and c == cores and a != "True"), None)
            if other is None or not float(other["throughput_pps"] or 0):
                continue
            ratio = float(scr["throughput_pps"]) / float(other["throughput_pps"])
            apart = differ(scr, other)
            name = subject.upper() if subject == "scr" else subject
            verdict = (f"{name} higher" if ratio > 1 else f"{name} lower") if apart else \
                "within the spread"
            rows.append([f"{skew:g}", cores, base, _pps(scr), _pps(other), f"{ratio:.2f}",
                         verdict])
    if rows:
        name = subject.upper() if subject == "scr" else subject
        doc.table(["skew", "cores", "baseline", f"{name} pps", "baseline pps",
                   f"{name} / baseline", "beyond the spread?"], rows)


def fit_section(doc: Document, run_dir: Path) -> None:
    path = run_dir / MODEL_FIT_CSV
    rows = read_csv(path) if path.exists() else []
    if not rows:
        doc.p("No SCR model fit (it needs faithful SCR points at two or more core counts).")
        return

    def interval(r: dict, name: str) -> str:
        low, high = r.get(f"{name}_low") or "", r.get(f"{name}_high") or ""
        return f"{float(low):.1f} – {float(high):.1f}" if low and high else "-"

    doc.table(["nf", "skew", "t µs", "t 95 %", "c µs", "c 95 %", "max error", "searches"],
              [[r["nf"], r["skew"], f"{float(r['t_us']):.1f}", interval(r, "t_us"),
                f"{float(r['c_us']):.2f}", interval(r, "c_us"),
                f"{100 * float(r['max_rel_error']):.1f} %", r["points"]] for r in rows])


def figures(doc: Document, report_dir: Path, run_dir: Path, pattern: str,
            caption: str) -> None:
    found = sorted(run_dir.glob(pattern))
    for path in found:
        doc.img(str(path.relative_to(report_dir)), f"{caption} ({path.name})")
    if not found:
        doc.p(f"No figure: the sweep in `{run_dir.name}` drew no `{pattern}`.")


def latency_section(doc: Document, run_dir: Path) -> None:
    path = run_dir / "latency.csv"
    rows = read_csv(path) if path.exists() else []
    if not rows:
        doc.p("No latency trials in this run (--latency-loads was empty).")
        return

    def us(value: str) -> str:
        return f"{float(value) / 1000:.2f}" if value not in ("", None) else "-"

    doc.table(["strategy", "cores", "skew", "load", "offered pps", "e2e p50 ms",
               "e2e p99 ms", "faithful", "equivalent"],
              [[_label(r), r["cores"], f"{float(r['skew']):g}",
                f"{100 * float(r['load']):.0f} % of {float(r['mlffr_pps']):.0f}",
                f"{float(r['offered_pps'] or 0):.0f}", us(r["e2e_us_p50"]),
                us(r["e2e_us_p99"]), r["faithful"], r["check_equivalent"]] for r in rows])


def stalls_section(doc: Document, run_dir: Path) -> None:
    """Lock with and without quota-aware locking: MLFFR and the stall share of the core
    time in the searches' reported trials."""
    searches = read_csv(run_dir / "results.csv")
    points = aggregate(searches)
    rows = []
    for p in points:
        mine = [s for s in searches if s["cores"] == p["cores"] and s["skew"] == p["skew"]
                and s.get("lock_quota_aware") == p.get("lock_quota_aware")
                and s.get("transfer_work_us") == p.get("transfer_work_us")
                and not s.get("error")]
        shares = [float(s["lock_stall_share"]) for s in mine if s.get("lock_stall_share")]
        rows.append([_label(p), p["cores"], f"{float(p['skew']):g}", _pps(p), spread(p) or "-",
                     f"{100 * statistics.median(shares):.1f} %" if shares else "-"])
    doc.table(["strategy", "cores", "skew", "MLFFR pps", "range", "stall share (median)"],
              rows)
    pairs = {}
    for p in points:
        key = (p["cores"], p["skew"])
        pairs.setdefault(key, {})[str(p.get("lock_quota_aware")).lower()] = p
    for (cores, skew), pair in sorted(pairs.items()):
        if "true" in pair and "false" in pair and float(pair["false"]["throughput_pps"] or 0):
            gain = float(pair["true"]["throughput_pps"]) / float(
                pair["false"]["throughput_pps"]) - 1
            single = min(int(pair[k].get("repeats") or 1) for k in ("true", "false")) < 2
            judged = ("one search each: no spread to judge it by" if single else
                      f"{'beyond' if differ(pair['true'], pair['false']) else 'within'} "
                      "the spread of the searches")
            doc.p(f"{cores} cores, skew {float(skew):g}: quota-aware locking changes lock's "
                  f"MLFFR by {100 * gain:+.0f} % ({judged}).")


def loss_section(doc: Document, run_dir: Path) -> None:
    """SCR with injected loss and recovery: MLFFR, relative to no loss, recovery's cost."""
    points = _points(run_dir)
    relative = relative_to_no_loss(points)
    rows = []
    for p, vs in zip(points, relative, strict=True):
        fetched = p.get("recovered") or "0"
        p50, p99 = p.get("fetch_us_p50") or "", p.get("fetch_us_p99") or ""
        rows.append([p["nf"], f"{100 * float(p.get('loss_rate') or 0):g}", _pps(p),
                     "-" if vs is None else f"{vs:.0f} %",
                     f"{100 * float(p.get('loss') or 0):.1f}",
                     equivalence_mark(p),
                     fetched, f"{float(p50):.0f}/{float(p99):.0f}" if p50 and p99 else "-"])
    doc.table(["nf", "loss %", "MLFFR", "vs no loss", "core loss %", "equivalent",
               "fetched", "fetch µs p50/p99"], rows)


def search_section(doc: Document, repeats: int) -> None:
    shape = Shape()
    doc.p(f"A simulation of the search ({shape.cores} cores x {shape.per_core:g} pps, "
          f"{shape.duration:g} s trials, {shape.queue}-frame queues, precision "
          f"{shape.precision:g}, {shape.max_steps} steps; `python experiments/bench_mlffr.py`"
          " prints more): the reported MLFFR over the true one, with trial-to-trial capacity "
          "noise σ. Its mean is the search's bias, its 5–95 % range the resolution of one "
          f"point (this report: {repeats} search(es) per point).")
    doc.table(SEARCH_HEADERS, [measure(Shape(noise=noise), r, steady, runs=200).row()
                               for noise in (0.1, 0.2) for r in sorted({1, repeats})
                               for steady in (False, True)])


def write_report(report_dir: Path) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` of the report in ``report_dir``."""
    report_dir = Path(report_dir)
    config = json.loads((report_dir / "config.json").read_text())
    args = config.get("arguments", {})
    doc = Document()
    title = "SCR testbed report" + (" (quick)" if args.get("quick") else "")
    doc.h(1, title)
    # The sweeps' own times when the report was interrupted before it wrote its total.
    seconds = config.get("seconds") or round(sum(
        json.loads(path.read_text()).get("seconds", 0)
        for path in report_dir.glob("*/*/summary.json")))
    doc.p(f"Command: `{config.get('command', 'python experiments/report.py')}`; commit "
          f"{config.get('git', '?')}; started {config.get('started', '?')}; "
          f"{seconds} s. Every table below is computed from the CSVs in this folder; every "
          "figure was drawn from them.")
    repeats = 1
    if (run := sweep_dir(report_dir, SCALING)) is not None:
        sweep = json.loads((run / "config.json").read_text()).get("arguments", {})
        repeats = int(sweep.get("repeats", 1))
        points = _points(run)
        doc.h(2, "Throughput against cores")
        doc.p(f"NF {', '.join(sweep.get('nf', []))}; strategies "
              f"{', '.join(sweep.get('strategies', []))}; cores {sweep.get('cores')}; skews "
              f"{sweep.get('skews')}; {repeats} search(es) per point, each point their "
              f"median with the min–max range; {sweep.get('duration')} s trials, warm-up "
              f"{sweep.get('warmup')} s. Folder: `{run.relative_to(report_dir)}`.")
        figures(doc, report_dir, run, "cores_skew*.png", "MLFFR against cores")
        points_table(doc, points)
        doc.h(3, "SCR against the baselines")
        if repeats < 2:
            doc.p("One search per point: no spread, so no difference is called beyond it.")
        comparison_table(doc, points, [s for s in sweep.get("strategies", [])
                                       if s not in ("scr", "single")])
        if "rsspp" in sweep.get("strategies", []) and "shard" in sweep.get("strategies", []):
            doc.h(3, "RSS++ against RSS")
            doc.p("The indirection table rebalanced by load (buckets moved with their "
                  "state) against the static hash: it should win at moderate skew and stop, "
                  "like it, at the hottest flow.")
            comparison_table(doc, points, ["shard"], subject="rsspp")
        doc.h(3, "The SCR model, MLFFR(n) = n / (t + (n-1) c)")
        fit_section(doc, run)
        doc.h(2, "Throughput against skew")
        figures(doc, report_dir, run, "skew*.png", "MLFFR against flow skew")
        doc.h(2, "Latency at a stated load")
        doc.p("One trial per point at a fraction of its median MLFFR; latency from the "
              "sequencer to the sink (queueing in front of the core included).")
        latency_section(doc, run)
    if (run := sweep_dir(report_dir, SENSITIVITY)) is not None:
        doc.h(2, "The lock's transfer cost: a sensitivity figure")
        doc.p("Lock at transfer cost 0, at its calibration (0.5 of a packet's processing "
              "time; basis in experiments/runtime/calibration.py) and at twice it (SCR at "
              "skew 0 is in the scaling figure above). Folder: "
              f"`{run.relative_to(report_dir)}`.")
        figures(doc, report_dir, run, "cores_skew*.png", "lock sensitivity")
        points_table(doc, _points(run))
    if (run := sweep_dir(report_dir, STALLS)) is not None:
        doc.h(2, "Lock-holder preemption stalls")
        doc.p("A lock waiter's wait over 1 ms is a stall: the holder was off its CPU inside "
              "the critical section (its CPU quota ran out, or the scheduler preempted it: "
              "an artifact of emulated cores on a shared machine). The share is the "
              "stalls' time over the cores' time in each search's reported trial; "
              "quota-aware is the option that paces each core below its quota so that the "
              "kernel never throttles it inside a lock (nfs/cores/lock.py). Folder: "
              f"`{run.relative_to(report_dir)}`.")
        stalls_section(doc, run)
    if (run := sweep_dir(report_dir, LOSS)) is not None:
        doc.h(2, "Loss recovery")
        doc.p("SCR on 4 cores, skew 1, with a seeded fraction of the sequenced packets "
              "dropped before the cores (loss %) and recovery on: the MLFFR, relative to the "
              "same NF without loss, the reported trial's loss at the cores' queues besides "
              "the injected drops, and what recovery fetched from the peers' logs. Folder: "
              f"`{run.relative_to(report_dir)}`.")
        loss_section(doc, run)
    doc.h(2, "The MLFFR search: bias and resolution")
    search_section(doc, repeats)
    md, page = report_dir / REPORT_MD, report_dir / REPORT_HTML
    md.write_text(doc.markdown())
    page.write_text(doc.html(title))
    return md, page


#: The README's block that :func:`update_readme` rewrites from a report.
README_BEGIN = "<!-- report:begin (written by: python -m experiments.plots.report DIR --readme) -->"
README_END = "<!-- report:end -->"


def update_readme(report_dir: Path, readme: Path, figures: Path) -> list[Path]:
    """Put the report's document into ``readme`` between :data:`README_BEGIN` and
    :data:`README_END`, its headings two levels down and its figures copied into
    ``figures`` (a folder next to the README, committed with it); the figures copied.
    ValueError if the README has no such block."""
    report_dir, readme, figures = Path(report_dir), Path(readme), Path(figures)
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_BEGIN!r} ... {README_END!r} block")
    md = (report_dir / REPORT_MD).read_text()
    figures.mkdir(parents=True, exist_ok=True)
    copied = []
    lines = []
    for line in md.splitlines():
        if line.startswith("#"):
            line = "##" + line  # the report's title becomes a ### heading
        elif line.startswith("![") and "](" in line:
            caption, path = line[2:].split("](", 1)
            source = report_dir / path.rstrip(")")
            target = figures / f"{source.parent.parent.name}-{source.name}"
            shutil.copyfile(source, target)
            copied.append(target)
            line = f"![{caption}]({target.relative_to(readme.parent).as_posix()})"
        lines.append(line)
    head, rest = text.split(README_BEGIN, 1)
    _old, tail = rest.split(README_END, 1)
    readme.write_text(head + README_BEGIN + "\n" + "\n".join(lines) + "\n" + README_END
                      + tail)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="report", description="Rewrite a report's "
                                     "report.md and report.html from its folder.")
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--readme", type=Path, default=None,
                        help="also put the report into this README's report block, its "
                             "figures into docs/report/ next to it")
    args = parser.parse_args(argv)
    if not (args.report_dir / "config.json").is_file():
        print(f"report: {args.report_dir} is not a report folder (no config.json)",
              file=sys.stderr)
        return 2
    for path in write_report(args.report_dir):
        print(path)
    if args.readme is not None:
        try:
            for path in update_readme(args.report_dir, args.readme,
                                      args.readme.parent / "docs" / "report"):
                print(path)
        except (OSError, ValueError) as err:
            print(f"report: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
