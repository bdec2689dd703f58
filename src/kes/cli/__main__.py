from kes.cli import main

main()
