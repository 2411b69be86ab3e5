import sys

# Before anything imports torch: OpenMP reads its wait policy and thread count once, when torch loads it.
from engine.allocator import configure_allocator, preload_tcmalloc
from engine.threads import apply_thread_policy

try:
    # freed tensor memory is reused instead of unmapped and zeroed again (engine/allocator.py): with tcmalloc where it
    # is installed (this process then starts once more, with it preloaded), else glibc's heap kept for small runs
    preload_tcmalloc()
    configure_allocator()
except ValueError as exc:  # a bad INTRINSIC_LAB_MALLOC
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
apply_thread_policy()

from engine.cli import main  # noqa: E402

sys.exit(main(own_process=True))
