"""The log: progress and log lines on standard error, on rank 0 only (standard output carries
results only). While a progress bar is shown, a training session writes its lines through the bar
instead (``Session.write``)."""
import sys

from paddlepalm import distributed


def log(message: str) -> None:
    if distributed.is_main():
        print(message, file=sys.stderr, flush=True)
