"""Getting weights: reading files safely, converting every known layout, the Hub and URLs, lock files, ``load``."""
