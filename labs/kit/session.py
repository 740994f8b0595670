"""``make run``: a lab's pipeline on a real network, and a Mininet CLI with the testbed's
own commands.

The pipeline is a :class:`~experiments.runtime.testbed.Testbed` (generator, sequencer node,
the NF cores running the lab's strategy with the student's file as a plugin, sink, the
controller on loopback). Besides Mininet's own commands (``nodes``, ``net``, ``nf ip link``,
...), :class:`LabCLI` has:

* ``send [PACKETS] [RATE]``: replay the lab's trace through the pipeline, then judge the run
  with the oracle and print what each core did; the pipeline is rebuilt for the next
  ``send`` (a few seconds: every run starts from empty state, as a trial does);
* ``counters``: what each core's interface has received so far (the kernel's counters) and,
  after a ``send``, what each core did with it;
* ``dissect CORE [N]``: the first N frames core CORE received in the last ``send``, dissected
  (SCR header, history records, the packet), from a capture taken on its interface;
* ``oracle``: the last run's verdict and every problem the oracle found;
* ``results``: where the last run's files are.

``exit`` (or end of input) stops everything: the :class:`Testbed` tears the network down
for certain, and the captures are ended by their handles.

Caveat: a ``send`` waits until the trace is replayed and the cores have stopped; at the
default rate that takes a few seconds, and the CLI does not take commands meanwhile.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

from mininet.cli import CLI
from tabulate import tabulate

from experiments.analysis.collect import collect, read_result
from experiments.analysis.errors import TrialError
from experiments.runtime.config import TrialConfig
from experiments.runtime.results import new_run_dir, write_config
from experiments.runtime.testbed import Testbed
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from labs.kit.grading import Grade, Lab, crash_line
from nfs import make_nf
from topologies.scr_topo import NF

CAPTURE_FRAMES = 40  # per core and send: enough to see a few rounds of the spray


class LabCLI(CLI):
    """Mininet's CLI with the testbed's commands (see the module docstring)."""

    prompt = "lab> "

    def __init__(self, session: Session, bed: Testbed, **kwargs):
        self.session = session
        self.bed = bed
        self.send_args: tuple[int, float] | None = None  # set by ``send``: run it, rebuild
        super().__init__(bed.net, **kwargs)

    def do_send(self, line: str) -> bool | None:
        """send [PACKETS] [RATE]: replay PACKETS of the lab's trace at RATE pps, then judge
        the run (the pipeline is rebuilt afterwards)."""
        spec = self.session.lab.run
        try:
            words = line.split()
            packets = int(words[0]) if words else spec.packets
            rate = float(words[1]) if len(words) > 1 else spec.rate_pps
            if packets < 1 or not 0 < rate <= 50_000:
                raise ValueError
        except ValueError:
            print("usage: send [PACKETS >= 1] [RATE in pps, at most 50000]")
            return None
        self.send_args = (packets, rate)
        return True  # leaves the command loop: Session.serve sends, judges and rebuilds

    def do_counters(self, _line: str) -> None:
        """counters: frames each core's interface received (now), and what each core did
        in the last send."""
        host = self.bed.net[NF]
        rows = []
        last = self.session.last_cores()
        for core in range(self.bed.config.cores):
            iface = self.bed.plan.core_iface(core)
            stats = [host.cmd(f"cat /sys/class/net/{iface}/statistics/{name}").strip()
                     for name in ("rx_packets", "rx_dropped")]
            done = last.get(core, {})
            s = done.get("stats", {})
            rows.append((core, iface, *stats, s.get("processed", "-"),
                         s.get("fast_forwarded", "-"), done.get("malformed_total", "-")))
        print(tabulate(rows, headers=("core", "interface", "rx now", "rx dropped now",
                                      "processed (last send)", "fast-forwarded",
                                      "malformed")))

    def do_dissect(self, line: str) -> None:
        """dissect CORE [N]: the first N frames core CORE received in the last send."""
        try:
            words = line.split()
            core = int(words[0])
            count = int(words[1]) if len(words) > 1 else 5
            if not 0 <= core < self.bed.config.cores or count < 1:
                raise ValueError
        except (ValueError, IndexError):
            print(f"usage: dissect CORE [N]  (CORE in 0..{self.bed.config.cores - 1})")
            return
        capture = self.session.capture(core)
        if capture is None:
            print("nothing captured yet: send a trace first")
            return
        nf = self.session.nf_record()
        argv = [sys.executable, "-m", "sequencer.dissect", str(capture), "--count", str(count),
                "--record-format", nf[0], "--record-names", nf[1]]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        print(done.stdout, end="")
        if done.returncode:
            print(done.stderr.strip())

    def do_oracle(self, _line: str) -> None:
        """oracle: the last send's verdict and every problem the oracle found."""
        result = self.session.last_result
        if result is None:
            print("no run yet: send a trace first")
            return
        print(oracle_summary(result))
        if "check_access_order" in result:  # a store strategy: its one-at-a-time order too
            print(f"access order: the store's final state "
                  f"{'equals' if result['check_access_order'] else 'does NOT equal'} its "
                  "recorded access order replayed one at a time")
        for problem in result["check_problems"]:
            print(f"  - {problem}")

    def do_results(self, _line: str) -> None:
        """results: the folder of the last send's files."""
        print(self.session.last_dir or "no run yet: send a trace first")


def oracle_summary(result: dict) -> str:
    if result["check_equivalent"]:
        verdict = "EQUIVALENT to one core processing the packets in sequence"
    elif result["check_consistent"]:
        verdict = "consistent: equal but for the gaps ground truth explains (not equivalent)"
    else:
        verdict = "NOT equivalent"
    return f"oracle: {verdict} ({len(result['check_problems'])} problems)"


class Session:
    """One ``make run``: build the pipeline, hand it to the CLI, run each ``send``."""

    def __init__(self, lab: Lab, lab_dir: Path, solution: bool = False,
                 results_root: Path | None = None):
        self.lab = lab
        self.out_dir = new_run_dir(f"labs/{lab.name}-run", results_root)
        self.grade = Grade(lab, lab_dir, solution, self.out_dir)
        if lab.plugin:  # the workers and the shim will load it: it must load here first
            self.grade.load()
        spec = lab.run
        self.config: TrialConfig = self.grade.config(
            calibrated=spec.calibrated, nf=spec.nf, strategy=spec.strategy, cores=spec.cores,
            rate_pps=spec.rate_pps, packets=spec.packets, **spec.config)
        self.trace = self.out_dir / "trace.pcap"
        frames = spec.frames() if spec.frames else make_trace(TraceSpec(
            packets=spec.packets, flows=spec.flows, skew=spec.skew, **spec.trace))
        write_pcap(self.trace, frames[:spec.packets])
        write_config(self.out_dir, {"lab": lab.name, "plugins": list(self.config.plugins)},
                     config=asdict(self.config))
        self.runs = 0
        self.last_dir: Path | None = None
        self.last_result: dict | None = None
        self.captures: dict[int, Path] = {}

    def nf_record(self) -> tuple[str, str]:
        """The NF's record format and field names, for the dissector."""
        nf = make_nf(self.config.nf, **self.config.nf_params)
        names = getattr(nf, "record_names", None) or [
            f"f{i}" for i in range(len(nf.record_format.unpack(bytes(nf.record_size))))]
        return nf.record_format.format, ",".join(names)

    def capture(self, core: int) -> Path | None:
        path = self.captures.get(core)
        return path if path is not None and path.exists() else None

    def last_cores(self) -> dict[int, dict]:
        if self.last_dir is None:
            return {}
        cores = {}
        for path in self.last_dir.glob("core*.json"):
            data = read_result(path)
            cores[data["core"]] = data
        return cores

    def serve(self, stdin=None) -> None:
        """Build the pipeline and run the CLI until ``exit``; each ``send`` is one run."""
        print(f"Lab {self.lab.number}: {self.lab.title}")
        print(f"results of this session: {self.out_dir}")
        while True:
            self.runs += 1
            run_dir = self.out_dir / f"run{self.runs:02d}"
            print(f"*** building the pipeline: {self.config.strategy} on "
                  f"{self.config.cores} cores, NF {self.config.nf} ...", flush=True)
            with Testbed(self.config, run_dir) as bed:
                print("*** pipeline up: generator -> s1 -> sequencer -> s1 -> cores -> sink."
                      " Commands: send, counters, dissect, oracle, results, help, exit")
                cli = LabCLI(self, bed, stdin=stdin or sys.stdin)
                if cli.send_args is None:
                    return  # exit or end of input: the Testbed tears everything down
                packets, rate = cli.send_args
                bed.config = replace(bed.config, packets=packets, rate_pps=rate)
                captures: list[subprocess.Popen] = []
                try:
                    self._start_captures(bed, run_dir, captures)
                    print(f"*** sending {packets} packets at {rate:g} pps ...", flush=True)
                    bed.send_trace(self.trace)
                finally:
                    for proc in captures:  # ended by handle; SIGTERM lets it save its file
                        proc.terminate()
                        try:
                            proc.wait(timeout=5)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            proc.wait()
            self._judge(bed.config, run_dir, bed.window)

    def _start_captures(self, bed: Testbed, run_dir: Path,
                        procs: list[subprocess.Popen]) -> None:
        """One capture per core interface, in the NF host, added to ``procs`` as each starts
        (the caller ends them by handle after the run, even if a later one fails to start)."""
        self.captures = {}
        for core in range(bed.config.cores):
            path = run_dir / f"capture-core{core}.pcap"
            argv = [sys.executable, "-m", "sequencer.dissect", "--iface",
                    bed.plan.core_iface(core), "--in-only", "--count", str(CAPTURE_FRAMES),
                    "--write", str(path)]
            procs.append(bed.net[NF].popen(argv, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
            self.captures[core] = path

    def _judge(self, config: TrialConfig, run_dir: Path, window: dict) -> None:
        crash = crash_line(run_dir, self.grade.student_paths())
        if crash:  # a process died: what the oracle says of the rest would mislead
            print(f"*** {crash}")
            print("oracle: not judged: a process crashed (fix it, then send again)")
            self.last_dir, self.last_result = run_dir, None
            return
        try:
            result = collect(config, self.trace, run_dir, window)
        except TrialError as err:
            print(f"*** the run could not be judged: {err}")
            self.last_dir, self.last_result = run_dir, None
            return
        self.last_dir, self.last_result = run_dir, result
        keys = ["offered_pps", "delivered_pps", "loss", "faithful"]
        if not result["faithful"]:  # why: the rule that fired and the machine's idle time
            keys += [k for k in ("bottleneck", "machine_idle") if k in result]
        print(tabulate([(k, str(result[k])) for k in keys], tablefmt="plain",
                       disable_numparse=True))
        print(oracle_summary(result) + " - type 'oracle' for details, "
              "'counters' for each core, 'dissect 0' for core 0's frames")
