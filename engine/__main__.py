import sys

if len(sys.argv) > 1 and sys.argv[1] in ("run", "cli-server"):
    # Before anything heavy is imported: a warm CLI server of this checkout may run the command (engine/cli_server.py)
    from engine import cli_server

    try:
        cli_server.mode()
        cli_server.idle_seconds()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "run":
        _code = cli_server.run_warm(sys.argv[1:])
        if _code is not None:
            sys.exit(_code)
    else:  # the environment as the user gave it, before this process sets its thread and allocator variables
        import os

        os.environ.setdefault(cli_server.ENV_FP_ENV, cli_server.env_fingerprint())
        if sys.argv[2:3] == ["serve"]:
            # numpy, scipy and OpenCV each start an OpenBLAS pool when they load; the server that forks must have
            # no thread but its own (each child sets its BLAS threads to its share, engine/cli_server.py)
            os.environ["OPENBLAS_NUM_THREADS"] = "1"

# Before anything imports torch: OpenMP reads its wait policy and thread count once, when torch loads it.
from engine.allocator import keep_bytes, preload_tcmalloc
from engine.threads import apply_thread_policy

try:
    # freed tensor memory is reused instead of unmapped and zeroed again (engine/allocator.py): with tcmalloc where it
    # is installed, this process starts once more, with it preloaded
    preload_tcmalloc()
    keep_bytes()  # a bad INTRINSIC_LAB_MALLOC_KEEP is refused now, not after a worker's first job
except ValueError as exc:  # a bad INTRINSIC_LAB_MALLOC or INTRINSIC_LAB_MALLOC_KEEP
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
if sys.argv[1:3] == ["cli-server", "serve"]:
    # not through the CLI's main: it sizes torch's thread pool, which must not exist in a process that forks
    sys.exit(cli_server.serve_main())
apply_thread_policy()

from engine.cli import main  # noqa: E402

sys.exit(main(own_process=True))
