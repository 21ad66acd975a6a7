"""`python -m replproxy ...`, and the `replproxy` console script.

`replproxy rdb ...` goes straight to the snapshot tools (`replproxy.rdb.cli`), without
importing the relay's command line (trio, the server, the config model): a file check should
not pay a relay's start-up. Everything else is `replproxy.cli`.
"""

import sys


def main() -> None:
    if sys.argv[1:2] == ["rdb"]:
        from replproxy.rdb.cli import main as rdb_main

        sys.exit(rdb_main(sys.argv[2:]))
    from replproxy.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
