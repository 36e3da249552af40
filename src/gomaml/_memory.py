"""Memory estimates taken before building anything large."""


def available_bytes():
    """MemAvailable from /proc/meminfo, or None when it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def fits(n_bytes, fraction=0.5):
    """True when n_bytes is at most `fraction` of the memory available now."""
    avail = available_bytes()
    return avail is None or n_bytes <= fraction * avail


def human(n_bytes):
    """'3.2 GiB', '512.0 KiB', '40 B'."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{int(n_bytes)} B"


def check_fits(what, n_bytes, fraction=0.5):
    """MemoryError naming what would be built and how much memory it needs."""
    if not fits(n_bytes, fraction):
        raise MemoryError(f"{what} would need about {human(n_bytes)}, more than "
                          f"{fraction:.0%} of the {human(available_bytes())} available now")
