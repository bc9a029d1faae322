"""Energy accounting's pure core: interval boundaries, energy per interval, capacity tariffs."""
