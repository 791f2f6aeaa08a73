"""Tables and figures: pure functions from tidy metric files to artifacts."""

from __future__ import annotations

from ..atomic import atomic_path


def save_figure(fig, *paths) -> None:
    """Write ``fig`` atomically to each path (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150)
    plt.close(fig)
