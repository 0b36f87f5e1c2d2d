"""Import: read targets into the repository, safely (full and incremental runs)."""
