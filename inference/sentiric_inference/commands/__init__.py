"""One module per `sentiric-llm` subcommand, each with `register(subparsers)`."""
