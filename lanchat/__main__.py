"""``python -m lanchat`` runs the command line."""

from lanchat.cli import main

if __name__ == "__main__":
    main()
