import sys

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
apply_thread_policy()

from engine.cli import main  # noqa: E402

sys.exit(main(own_process=True))
