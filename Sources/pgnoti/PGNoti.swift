import ArgumentParser

@main
struct PGNoti: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgnoti",
        abstract:
            "Receives Korean PG payment notifications, stores each once, ACKs after commit, queues JSON events.",
        subcommands: [Serve.self, CheckConfig.self, Send.self, QuarantineCommand.self],
        defaultSubcommand: Serve.self)
}
