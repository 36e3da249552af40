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
        self.pending = None

    def update(self, done, text="", force=False):
        if not self.enabled:
            return
        self.pending = (done, text)
        now = time.perf_counter()
        if not force and done < self.total and \
                now - self.last < (0.1 if self.tty else self.every):
            return
        self.last = now
        self.pending = None
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
        """Show the last state if it was not shown, and end the line on a terminal."""
        if self.enabled and self.pending is not None:
            self.update(*self.pending, force=True)
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
