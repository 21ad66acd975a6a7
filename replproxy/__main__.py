from replproxy.cli import main

main()
