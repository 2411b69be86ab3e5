import sys

# Before anything imports torch: OpenMP reads its wait policy and thread count once, when torch loads it.
from engine.threads import apply_thread_policy

apply_thread_policy()

from engine.cli import main  # noqa: E402

sys.exit(main(own_process=True))
