"""Entry point for ``python -m flux2_cli``."""

from flux2_cli._entry import main

if __name__ == "__main__":
    main()
