from embtune.cli import main

main()
