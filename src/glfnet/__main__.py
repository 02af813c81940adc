from glfnet.cli.main import main

main()
