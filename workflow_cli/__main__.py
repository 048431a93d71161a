from workflow_cli.cli.app import main

main()
