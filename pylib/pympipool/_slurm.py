"""The built-in SLURM queue adapter: ``queue_adapter="slurm"``.

The executor's runtime is submitted as a batch job with ``sbatch`` instead
of being started here.  ``submit_job`` (the queue adapter's one method, as
pympipool 0.5 and pysqa have it) writes a batch script that runs the
runtime's command with ``srun`` inside the job's allocation, submits it and
records the job id.  Tasks submitted meanwhile wait in the executor's queue
while the job is pending, and run once its ranks have connected.

The batch job runs on a compute node, another host: the executor listens
with TCP and CURVE (never unauthenticated), on the address of this host's
name unless ``hostname`` says otherwise.  The job needs the executor's
credentials, and a compute node does not see this host's ``/tmp``: they are
copied into the job's directory (mode 0700, inside the working directory,
which a cluster shares between its nodes), with the script and the job's
output, and the directory is removed when the executor ends.

A watcher thread asks ``squeue`` (then ``scontrol``, for a job that has
left the queue) for the job's state every ``POLL_S`` seconds.  When the job
ends while the executor still needs it (FAILED, CANCELLED, TIMEOUT,
NODE_FAIL, OUT_OF_MEMORY, or even COMPLETED), the executor breaks: every
future fails with ``ExecutorBroken`` naming the job id, its state, its
reason and exit code and the tail of its output.  When the executor ends
(``shutdown()``, garbage collection, interpreter exit) a job still pending
or running is cancelled with ``scancel``.

``queue_adapter_kwargs`` (all optional): ``partition``, ``time`` (SLURM's
forms: ``"10"``, ``"1:00:00"``, ``"1-0"``), ``nodes``, ``account``,
``job_name`` and ``extra`` (a list of more ``#SBATCH`` lines, with or
without the ``#SBATCH`` prefix: ``["--qos=debug", "--mem=4G"]``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from typing import Any, Callable, Dict, Optional

from ._checks import _find_program

#: how often the watcher asks SLURM for the job's state, in seconds
POLL_S = 0.5
#: lines of the job's output an ExecutorBroken message carries
TAIL_LINES = 15
#: states of a job that is not over yet
_ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
          "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD",
          "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT", "STOPPED"}
_KWARGS = ("partition", "time", "nodes", "account", "job_name", "extra")


def _check_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(kwargs) - set(_KWARGS))
    if unknown:
        raise TypeError(
            f"queue_adapter='slurm' does not take {', '.join(unknown)} in "
            f"queue_adapter_kwargs: it takes {', '.join(_KWARGS)} (extra: a list of "
            f"more #SBATCH lines)"
        )
    out: Dict[str, Any] = {}
    for key in ("partition", "time", "account", "job_name"):
        value = kwargs.get(key)
        if value is None:
            continue
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise TypeError(f"queue_adapter_kwargs[{key!r}] must be a str, not "
                            f"{type(value).__name__}")
        value = str(value)
        if not value or any(c in value for c in "\n\r\0 "):
            raise ValueError(f"queue_adapter_kwargs[{key!r}] {value!r} is not a SLURM value")
        out[key] = value
    nodes = kwargs.get("nodes")
    if nodes is not None:
        if isinstance(nodes, bool) or not isinstance(nodes, (int, str)):
            raise TypeError(f"queue_adapter_kwargs['nodes'] must be an int, not "
                            f"{type(nodes).__name__}")
        if not re.fullmatch(r"[1-9]\d*(-[1-9]\d*)?", str(nodes)):
            raise ValueError(f"queue_adapter_kwargs['nodes'] must be a count (or a "
                             f"range such as '2-4'), not {nodes!r}")
        out["nodes"] = str(nodes)
    extra = kwargs.get("extra")
    if extra is not None:
        if isinstance(extra, str) or not isinstance(extra, (list, tuple)):
            raise TypeError("queue_adapter_kwargs['extra'] must be a list of #SBATCH lines")
        lines = []
        for line in extra:
            if not isinstance(line, str) or "\n" in line or not line.strip():
                raise ValueError(f"queue_adapter_kwargs['extra'] entry {line!r} is not "
                                 f"one #SBATCH line")
            line = line.strip()
            lines.append(line if line.startswith("#SBATCH") else f"#SBATCH {line}")
        out["extra"] = lines
    return out


def _tail(path: str, lines: int = TAIL_LINES) -> str:
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-lines:])
    except OSError:
        return ""


class SlurmAdapter:
    """One executor's batch job.  Made by the engine for
    ``queue_adapter="slurm"``; ``submit_job`` is called once."""

    def __init__(self, kwargs: Optional[Dict[str, Any]]) -> None:
        self.options = _check_kwargs(dict(kwargs or {}))
        self.sbatch = _find_program(os.environ.get("PYMPIPOOL_SBATCH") or "sbatch",
                                    "sbatch (queue_adapter='slurm')")
        self.squeue = _find_program("squeue", "squeue (queue_adapter='slurm')")
        self.scontrol = _find_program("scontrol", "scontrol (queue_adapter='slurm')")
        self.scancel = _find_program("scancel", "scancel (queue_adapter='slurm')")
        self.job_id: Optional[str] = None
        self.directory: Optional[str] = None
        self.output: Optional[str] = None
        self._done = threading.Event()
        self._watcher: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    # -- the queue adapter's method

    def submit_job(self, working_directory: str, cores: int, command: str) -> None:
        argv = shlex.split(command)
        self.directory = tempfile.mkdtemp(prefix=".pympipool-slurm-", dir=working_directory)
        # the credentials where the compute node can read them
        i = argv.index("--credentials")
        credentials = os.path.join(self.directory, "credentials")
        shutil.copyfile(argv[i + 1], credentials)
        os.chmod(credentials, 0o600)
        argv[i + 1] = credentials
        self.output = os.path.join(self.directory, "output")
        o = self.options
        lines = ["#!/bin/sh",
                 f"#SBATCH --job-name={o.get('job_name', 'pympipool')}",
                 f"#SBATCH --ntasks={cores}",
                 f"#SBATCH --output={self.output}",
                 f"#SBATCH --chdir={working_directory}"]
        for key, flag in (("partition", "partition"), ("time", "time"),
                          ("nodes", "nodes"), ("account", "account")):
            if key in o:
                lines.append(f"#SBATCH --{flag}={o[key]}")
        lines += o.get("extra", [])
        lines.append("exec " + shlex.join(argv))
        script = os.path.join(self.directory, "job.sh")
        with open(script, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run([self.sbatch, "--parsable", script], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            self.remove()
            raise RuntimeError(f"sbatch refused the job (exit status {r.returncode}): "
                               f"{r.stderr.strip() or r.stdout.strip()}")
        self.job_id = r.stdout.strip().split(";")[0]

    # -- the job's life

    def state(self) -> Dict[str, str]:
        """{"state", "reason", "exit"} of the job; state "" once SLURM has
        forgotten it."""
        assert self.job_id is not None
        r = subprocess.run([self.scontrol, "show", "job", "-o", self.job_id],
                           capture_output=True, text=True, timeout=60)
        fields = dict(re.findall(r"(\w+)=(\S*)", r.stdout)) if r.returncode == 0 else {}
        return {"state": fields.get("JobState", ""), "reason": fields.get("Reason", ""),
                "exit": fields.get("ExitCode", "")}

    def watch(self, on_end: Callable[[str], None]) -> None:
        """Starts the watcher: ``on_end(message)`` once, when the job ends
        before ``finish()``."""
        self._watcher = threading.Thread(target=self._watch, args=(on_end,),
                                         name="pympipool-slurm-watch", daemon=True)
        self._watcher.start()

    def _watch(self, on_end: Callable[[str], None]) -> None:
        while not self._done.wait(POLL_S):
            try:
                st = self.state()
            except (OSError, subprocess.TimeoutExpired):
                continue
            if st["state"] in _ALIVE:
                continue
            if self._done.is_set():
                return
            state = st["state"] or "no longer known to SLURM"
            text = (f"the SLURM job {self.job_id} of the pympipool-runtime ended: state "
                    f"{state}")
            if st["reason"] and st["reason"] != "None":
                text += f", reason {st['reason']}"
            if st["exit"]:
                text += f", exit code {st['exit']}"
            tail = _tail(self.output or "")
            text += (f"; its output ({self.output}) ended with:\n{tail}" if tail
                     else "; its output is empty")
            on_end(text)
            return

    def finish(self) -> None:
        """The executor has ended: stop watching, cancel the job if it is
        still queued or running, remove its directory."""
        self._done.set()
        if self.job_id is not None:
            try:
                if self.state()["state"] in _ALIVE:
                    subprocess.run([self.scancel, self.job_id], capture_output=True,
                                   timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                pass
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join()
        self.remove()

    def remove(self) -> None:
        with self._lock:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory = None
