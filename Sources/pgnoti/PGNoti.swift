import ArgumentParser
import PGNotiCore

@main
struct PGNoti: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgnoti",
        abstract:
            "Receives Korean PG payment notifications, stores each once, ACKs after commit, queues JSON events.",
        version: PGNotiVersion.current,
        subcommands: [
            Serve.self, CheckConfig.self, Send.self, EventsCommand.self, QuarantineCommand.self, Redeliver.self,
            Stats.self, Backup.self, Purge.self, Retention.self, Migrate.self, ForwardCommand.self, Consume.self,
            TossCommand.self, PayupCommand.self, CopyLedger.self,
        ],
        defaultSubcommand: Serve.self)
}
