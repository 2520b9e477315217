"""``python -m fastdeconv.cli``: the same as the ``fastdeconv`` command."""

import sys

from fastdeconv.cli import main

if __name__ == "__main__":
    sys.exit(main())
