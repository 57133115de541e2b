import ArgumentParser

/// Tools for `bench/run.sh`: never part of the daemon, never started by a configuration file.
@main
struct PGNotiBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgnoti-bench",
        abstract: "Benchmark helpers for pgnoti: bodies, an ACK-only server, a fixed-rate load, outbox seeding.",
        subcommands: [MakeBodies.self, AckServer.self, Load.self, Seed.self, WaitFiles.self])
}
