"""Progress on stderr: one redrawn line on a terminal, plain lines (at most every few seconds)
otherwise."""
import sys
import time


class Progress:
    def __init__(self, total, label, *, enabled=True, stream=None, every=5.0):
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = stream or sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self.t0 = self.last = time.perf_counter()
        self.drawn = False

    def update(self, done, text=""):
        if not self.enabled:
            return
        now = time.perf_counter()
        if not self.tty and now - self.last < self.every and done < self.total:
            return
        if self.tty and now - self.last < 0.1 and done < self.total:
            return
        self.last = now
        frac = done / self.total if self.total else 1.0
        line = f"{self.label}: {done}/{self.total} ({100 * frac:5.1f}%) " \
               f"{now - self.t0:7.1f}s {text}"
        if self.tty:
            width = 20
            bar = "#" * int(width * frac) + "-" * (width - int(width * frac))
            self.stream.write(f"\r{self.label} [{bar}] {line[len(self.label) + 2:]}\033[K")
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
