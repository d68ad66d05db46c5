"""The progress callback long-running domain work reports through: ``progress(stage, advance)``.

Domain packages call it; the CLI turns it into a Rich progress bar. One definition for all.
"""

from collections.abc import Callable

Progress = Callable[[str, int], None]
