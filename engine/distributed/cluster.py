"""Connecting to Ray: a local cluster started here, or an existing one by address.

``--on`` takes ``ray`` (or ``local``: a new cluster on this machine for this command, stopped afterwards),
``ray://HOST:PORT`` (Ray Client, default port 10001: the driver may be anywhere that reaches the head), ``HOST:PORT``
(the head's GCS address, default port 6379: this machine must be a node of the cluster, ``ray start --address``) or
``auto`` (the cluster this machine's ``ray start`` joined). A process that already called ``ray.init`` (a test, a
notebook) keeps its connection.

The driver's ``INTRINSIC_LAB_*`` settings (data folder, weights cache, artifact store, threads) are passed to the
actors it starts (:func:`forwarded_env`), so a worker resolves weights and stores artifacts where the driver would.

Ray's usage statistics are off unless ``RAY_USAGE_STATS_ENABLED`` says otherwise: a lab tool does not phone home.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import IntrinsicLabError, ParameterError

INSTALL_HINT = "pip install 'ray[client]>=2.60,<2.61'"
_HOST_PORT = re.compile(r"[A-Za-z0-9_.\-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}")


class RayUnavailableError(IntrinsicLabError):
    """Ray is not installed, or the cluster cannot be reached."""


def parse_target(on: str) -> str | None:
    """The ``address`` for ``ray.init`` (``local``: a new local cluster). Raises ParameterError for anything else."""
    text = (on or "").strip()
    if text in ("ray", "local"):
        return "local"
    if text == "auto":
        return "auto"
    if text.startswith("ray://") and _HOST_PORT.fullmatch(text[len("ray://"):]):
        return text
    if _HOST_PORT.fullmatch(text):
        return text
    raise ParameterError(f"--on expects ray (a local cluster), ray://HOST:PORT (Ray Client) or HOST:PORT (the "
                         f"head's address), got {on!r}")


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(f"--on ray needs the ray package: {INSTALL_HINT}") from None
    return ray


def forwarded_env() -> dict[str, str]:
    """The variables a Ray actor of this project gets from the driver: every ``INTRINSIC_LAB_*``, the passive
    OpenMP wait policy of :mod:`engine.threads` (it must be in the environment before the actor imports torch), and
    the C heap of :mod:`engine.allocator`: where the driver would run with tcmalloc, the actor's process is started
    with it preloaded (Ray starts an actor's process with these variables). On a node without tcmalloc at that path
    the loader says so once and the actor runs with glibc's malloc."""
    from ..allocator import requested_mode, tcmalloc_path

    env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           **{k: v for k, v in os.environ.items() if k.startswith("INTRINSIC_LAB_")}}
    library = tcmalloc_path()
    if library is not None and requested_mode() != "system":
        env["LD_PRELOAD"] = library
    return env


def cluster_cpus(ray) -> int:
    return int(ray.cluster_resources().get("CPU", 0))


def cluster_gpus(ray) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


@contextmanager
def connect(on: str, *, num_cpus: int | None = None) -> Iterator[Any]:
    """The ``ray`` module, connected to the cluster ``on`` names; a cluster started here is stopped on exit."""
    address = parse_target(on)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    local = address == "local"
    kwargs: dict[str, Any] = {"include_dashboard": False} if local else {}
    if local and num_cpus:
        kwargs["num_cpus"] = num_cpus
    if address.startswith("ray://"):
        try:
            import grpc  # noqa: F401 -- Ray Client talks gRPC
        except ImportError:
            raise RayUnavailableError(f"a ray:// address needs Ray Client: {INSTALL_HINT}") from None
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, TimeoutError, ValueError) as exc:
        hint = ("" if os.environ.get("RAY_AUTH_MODE") else
                "; if the cluster uses token authentication (what `ray start --head` does by default), set "
                "RAY_AUTH_MODE=token here too, with its token in RAY_AUTH_TOKEN or ~/.ray/auth_token")
        raise RayUnavailableError(f"cannot connect to the Ray cluster at {address}: {exc}{hint}") from None
    try:
        if not local:
            _check_project_importable(ray, address)
        yield ray
    finally:
        ray.shutdown()


def _importable() -> str:
    import engine

    return engine.__name__


def _check_project_importable(ray, address: str) -> None:
    """The cluster's workers run this project's code, so they must import it: say so plainly when they cannot."""
    try:
        ray.get(ray.remote(num_cpus=0)(_importable).remote(), timeout=300)
    except Exception as exc:  # noqa: BLE001 -- unpickling fails here (Ray Client) or in the task (a node)
        if "No module named 'engine'" not in str(exc):
            raise
        raise RayUnavailableError(
            f"the Ray cluster at {address} cannot import this project (engine): start every node from the project "
            f"folder, or with PYTHONPATH set to it, or from the project's Docker image, with the same version of "
            f"the code as this command") from None
