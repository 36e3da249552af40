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


def check_fits(what, n_bytes, fraction=0.5):
    """MemoryError naming what would be built and how much memory it needs."""
    if not fits(n_bytes, fraction):
        avail = available_bytes()
        raise MemoryError(f"{what} would need about {n_bytes / 2**30:.1f} GiB, more than "
                          f"{fraction:.0%} of the {avail / 2**30:.1f} GiB available now")
