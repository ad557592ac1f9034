"""The kernels ``irkit run`` executes its phases in: one started (and its libraries imported) before the first
phase and used by every phase that follows a successful one, its namespace cleared between them, talking over
Unix sockets in a private directory of the run, never outliving it; and papermill's engine writing the executed
notebook at most once a second."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from jupyter_client.manager import AsyncKernelManager
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from traitlets import CaselessStrEnum, default

from irkit import playbook

__all__ = ["STOP_REQUESTED", "WarmKernel", "kernel_dir"]

# Set by the CLI's SIGINT and SIGTERM handlers before they raise KeyboardInterrupt. Python can lose that exception
# (one raised inside a weakref callback, as an import's lock cleanup runs, is printed and ignored); the run checks
# this flag between steps and while it waits for a kernel, so Ctrl-C always stops a run.
STOP_REQUESTED = threading.Event()


class _IpcKernelManager(AsyncKernelManager):
    """Kernels talk over Unix sockets: nothing listens on TCP (it matters in a shared pod or Job).

    The connection file (it holds the kernel's signing key) and the sockets go into ``kernel_dir``,
    never the working directory, which may be unwritable or shared.
    """

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
    kernel_dir: ClassVar[str] = ""

    @default("connection_file")
    def _private_connection_file(self) -> str:
        return os.path.join(self.kernel_dir or tempfile.gettempdir(), f"kernel-{uuid.uuid4()}.json")


_STARTED: set[WarmKernel] = set()  # kernels started ahead and not yet stopped, for the exit handler


def _kill(warm: WarmKernel) -> None:
    """SIGKILL a kernel started ahead, with its process group (its own session, never irkit's)."""
    process = getattr(getattr(warm.km, "provisioner", None), "process", None)
    with contextlib.suppress(Exception):
        if process is not None and process.poll() is None and os.getpgid(process.pid) != os.getpgrp():
            os.killpg(os.getpgid(process.pid), signal.SIGKILL)


@atexit.register
def _kill_leftovers() -> None:
    """At exit, no kernel started ahead outlives the run (it would hold the caller's pipes open)."""
    for warm in list(_STARTED):
        _kill(warm)


class WarmKernel:
    """The kernel a phase runs in, readied on another thread while the run does something else.

    Starting a kernel and importing pandas, plotly, the Kubernetes client and psycopg costs a second or two;
    a run pays it once. The first phase's kernel is started fresh; each later phase reuses the kernel of the
    phase before it when that phase succeeded (``reuse``): its namespace is cleared as a new kernel's would be
    (IPython's reset, the execution count back at 1), so the executed notebook is the same as in a kernel of its
    own. The phase's module is imported and its preparation run (phase 5 starts the browser that draws its
    images). If anything goes wrong here the phase starts its own kernel, as papermill does by default.
    """

    def __init__(self, manager: type[AsyncKernelManager], phase: int,
                 reuse: AsyncKernelManager | None = None) -> None:
        self.km = reuse if reuse is not None else manager(kernel_name="python3")
        self.reused = reuse is not None
        self.error: BaseException | None = None
        module = f"irkit.phases.{playbook.phase(phase).module}"
        # Imported without binding a name (the notebook's namespace stays as papermill would leave it), then the
        # phase's own preparation if it has one.
        self._code = ("get_ipython().reset(new_session=True)\n" if self.reused else "") + (
            f"[__import__(m) for m in ({module!r}, 'irkit.phases.incident', 'irkit.phases.history', "
            "'pandas', 'plotly.graph_objects', 'kubernetes.client', 'psycopg')]\n"
            f"getattr(__import__({module!r}, fromlist=['prepare']), 'prepare', lambda: None)()")
        self._thread = threading.Thread(target=self._start, name=f"irkit-kernel-phase-{phase}", daemon=True)
        self._abort = threading.Event()
        _STARTED.add(self)
        self._thread.start()

    def _start(self) -> None:
        try:
            asyncio.run(self._warm())
        except BaseException as exc:  # any failure: the phase starts its own kernel
            self.error = exc

    async def _warm(self) -> None:
        if self._abort.is_set():
            return
        if not self.reused:
            await self.km.start_kernel(cwd=str(Path.cwd()),
                                       extra_arguments=["--HistoryManager.hist_file=:memory:"])
        if self._abort.is_set():
            _kill(self)
            return
        client = self.km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            wanted = client.execute(self._code, silent=True, store_history=False)
            while True:  # the reply to that execution; anything else on the shell channel is not ours
                reply = await client.get_shell_msg(timeout=60)
                if reply["parent_header"].get("msg_id") == wanted:
                    break
        finally:
            client.stop_channels()

    def take(self) -> AsyncKernelManager | None:
        """The readied kernel's manager, or None (then papermill starts one): waits for the start to finish, and
        stops waiting the moment a stop is requested (a kernel killed by the same Ctrl-C would be waited for in
        vain)."""
        deadline = time.monotonic() + 90
        while self._thread.is_alive() and time.monotonic() < deadline:
            if STOP_REQUESTED.is_set():
                raise KeyboardInterrupt
            self._thread.join(0.1)
        if self._thread.is_alive() or self.error is not None or not self.km.has_kernel:
            self.discard()
            return None
        return self.km

    def discard(self) -> None:
        """Stop the kernel (a phase skipped, the run interrupted, or its phase done with it). A start still under
        way gets two seconds, then its kernel is killed: Ctrl-C must not wait for imports on a loaded machine."""
        self._abort.set()
        self._thread.join(2)
        with contextlib.suppress(Exception):
            if self._thread.is_alive():
                _kill(self)
            elif self.km.has_kernel:
                asyncio.run(self._shutdown())
        if not self._thread.is_alive():
            _STARTED.discard(self)

    def hand_over(self) -> None:
        """The kernel now belongs to the WarmKernel that reuses it: this one no longer stops it."""
        _STARTED.discard(self)
        self._abort.set()
        self.km = type(self.km)(kernel_name="python3")  # an empty manager: a late discard() stops nothing

    async def _shutdown(self) -> None:
        await self.km.shutdown_kernel(now=True)


class _Saving(NotebookExecutionManager):
    """papermill's bookkeeping, writing the executed notebook at most once a second instead of twice per cell.

    papermill rewrites the whole notebook when each cell starts and when it ends: fifty writes of a
    notebook of a few hundred KB for phase 2, seconds of a run. Once a second still shows a person
    watching the file what runs now; papermill writes the complete notebook when the phase ends, failed
    or not, and the phase's records are on disk as each step finishes whatever happens to the notebook.
    """

    def save(self, **kwargs: Any) -> None:
        if (self.now() - self.last_save_time).total_seconds() >= 1.0:
            super().save(**kwargs)


class _Engine(NBClientEngine):
    """papermill's nbclient engine with :class:`_Saving` (registered as ``irkit``)."""

    @classmethod
    def execute_notebook(cls, nb: Any, kernel_name: str, output_path: str | None = None, progress_bar: bool = True,
                         log_output: bool = False, autosave_cell_every: int = 30, **kwargs: Any) -> Any:
        manager = _Saving(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                          autosave_cell_every=autosave_cell_every)
        manager.notebook_start()
        try:
            cls.execute_managed_notebook(manager, kernel_name, log_output=log_output, **kwargs)
        finally:
            manager.cleanup_pbar()
            manager.notebook_complete()
        return manager.nb


papermill_engines.register("irkit", _Engine)


@contextlib.contextmanager
def kernel_dir() -> Iterator[type[AsyncKernelManager]]:
    """A kernel manager class whose connection files and IPC sockets live in a private (0700) directory
    of this run, removed afterwards; directories left by a run that was killed are removed first."""
    base = Path(tempfile.gettempdir())
    for stale in base.glob("irkit-kernels-*"):
        owner = stale.name.split("-")[2]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=f"irkit-kernels-{os.getpid()}-")  # mkdtemp makes it 0700
    try:
        yield type("_RunKernelManager", (_IpcKernelManager,), {"kernel_dir": path})
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
