"""TEST-ONLY methods for the store and worker tests, registered on import (never listed in METHOD_MODULES).

They exist to make a worker's behaviour observable and controllable: ``test_echo`` logs every run to
``$INTRINSIC_LAB_TEST_RUN_LOG`` (so a test can count executions), ``test_sleep`` runs for a set time while
reporting progress (so a test can kill or stop a worker mid-job), ``test_crash`` always raises an unexpected
error and ``test_user_error`` a user-facing one; ``test_cuda_only`` declares that it needs CUDA;
``test_out_of_memory`` raises ``MemoryError`` (infrastructure), ``test_die`` ends its process (a job that kills its
worker) and ``test_nan`` returns NaN pixels.
"""

from __future__ import annotations

import os
import time

import numpy as np

from engine.errors import InputKindError
from engine.registry import (
    InputKind, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec, all_methods, get_method, register,
)

RUN_LOG_ENV = "INTRINSIC_LAB_TEST_RUN_LOG"


def _log(event: str, params) -> None:
    path = os.environ.get(RUN_LOG_ENV)
    if path:
        # O_APPEND makes each short line one atomic write, even with several worker processes.
        with open(path, "a") as handle:
            handle.write(f"{event} tag={params.get('tag', '-')} pid={os.getpid()}\n")


def _echo(inputs, params, ctx):
    _log("run", params)
    image = inputs.image
    time.sleep(float(params["seconds"]))
    ctx.progress(1.0, "done")
    return MethodResult(layers={"scaled": np.clip(image * params["scale"], 0, 1)},
                        values={"mean_rgb": image.reshape(-1, 3).mean(axis=0)},
                        info={"pid": os.getpid(), "residual": np.float32("nan"), "sizes": np.array([3, 4])})


def _sleep(inputs, params, ctx):
    _log("start", params)
    steps = max(1, int(round(float(params["seconds"]) / 0.05)))
    for step in range(steps):
        time.sleep(0.05)
        ctx.progress((step + 1) / steps, f"step {step + 1} of {steps}")
    _log("end", params)
    return MethodResult(layers={"copy": inputs.image})


def _crash(inputs, params, ctx):
    _log("run", params)
    raise RuntimeError("simulated crash inside the method")


def _out_of_memory(inputs, params, ctx):
    _log("run", params)
    raise MemoryError()


def _die(inputs, params, ctx):
    """Stands for a job that kills its worker (the kernel's OOM killer, a crash in native code)."""
    _log("run", params)
    os._exit(137)


def _nan(inputs, params, ctx):
    return MethodResult(layers={"copy": np.full_like(inputs.image, np.nan)})


def _user_error(inputs, params, ctx):
    raise InputKindError("this test method refuses every input")


def _spec(name, runner, params=(), outputs=(OutputSpec("copy", OutputKind.IMAGE, "the input"),),
          devices=("cpu", "cuda")):
    return MethodSpec(
        name=name, title=f"{name} (test only)", paper="none (test-only method)", year=2000, task="test",
        summary="test-only method for the store and worker tests", input_kind=InputKind.IMAGE,
        outputs=outputs, params=params, runner=lambda: runner, devices=devices, is_baseline=True,
    )


TEST_METHODS = (
    _spec("test_echo", _echo,
          (ParamSpec("scale", 0.5, "multiplier"), ParamSpec("seconds", 0.0, "time to take"),
           ParamSpec("tag", 0, "identifies the job in the run log", int)),
          (OutputSpec("scaled", OutputKind.IMAGE, "input × scale"),
           OutputSpec("mean_rgb", OutputKind.VECTOR, "mean RGB of the input"))),
    _spec("test_sleep", _sleep, (ParamSpec("seconds", 1.0, "how long to run"),
                                 ParamSpec("tag", 0, "identifies the job in the run log", int))),
    _spec("test_crash", _crash, (ParamSpec("tag", 0, "identifies the job in the run log", int),)),
    _spec("test_user_error", _user_error),
    _spec("test_out_of_memory", _out_of_memory, (ParamSpec("tag", 0, "identifies the job in the run log", int),)),
    _spec("test_die", _die, (ParamSpec("tag", 0, "identifies the job in the run log", int),)),
    _spec("test_nan", _nan),
    _spec("test_cuda_only", _sleep, (ParamSpec("seconds", 0.0, "how long to run"),), devices=("cuda",)),
)


def register_test_methods() -> None:
    all_methods()  # loads the real registry first, so a test method never shadows a real one
    for spec in TEST_METHODS:
        try:
            get_method(spec.name)
        except Exception:
            register(spec)


register_test_methods()
