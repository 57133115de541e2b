import ArgumentParser
import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiIntake
@_spi(Bench) import PGNotiServer
import PGNotiStore

#if canImport(Glibc)
    import Glibc
#endif

struct MakeBodies: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bodies",
        abstract: "Write signed Smartro bodies, one a line; a share of them repeats earlier ones (a retry storm).")

    @Argument(help: "How many lines.") var count: Int
    @Argument(help: "Output file.") var output: String
    @Option(help: "Share of lines (0…1) that repeat an earlier notification.") var dupRatio = 0.0
    @Option(help: "Index of the first notification, so two files never share one.") var first = 0

    func validate() throws {
        guard count > 0 else { throw ValidationError("count must be positive") }
        guard (0..<1).contains(dupRatio) else { throw ValidationError("--dup-ratio must be in [0, 1)") }
    }

    func run() throws {
        let bodies = try SmartroBodies()
        let unique = max(1, Int(Double(count) * (1 - dupRatio)))
        var generator = SystemRandomNumberGenerator()
        var indices = Array(first..<first + unique)
        indices += (unique..<count).map { _ in first + Int.random(in: 0..<unique, using: &generator) }
        indices.shuffle(using: &generator)
        var text = ""
        text.reserveCapacity(count * 700)
        for i in indices {
            text += bodies.body(i)
            text += "\n"
        }
        try text.write(toFile: output, atomically: true, encoding: .utf8)
    }
}

struct AckServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ack-server",
        abstract: "pgnoti's HTTP stack answering OK after reading the body: no parse, no store.")

    @Option(help: "host:port") var listen = "127.0.0.1:18090"

    func run() async throws {
        guard let address = ListenAddress(parsing: listen) else { throw ValidationError("--listen is host:port") }
        var logger = Logger(label: "pgnoti-bench")
        logger.logLevel = .info
        try await AckOnlyServer.run(host: address.host, port: address.port, logger: logger)
    }
}

struct Seed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Commit distinct notifications through the intake into a ledger with no relay running, leaving their events in the outbox."
    )

    @Option(help: "SQLite file (created if missing).") var database: String
    @Option(help: "How many notifications.") var count = 100_000
    @Option(help: "Submissions in flight at once.") var concurrency = 512
    @Option(help: "Index of the first notification.") var first = 10_000_000

    func run() async throws {
        let ledger = try Ledger(path: database)
        var logger = Logger(label: "pgnoti-bench")
        logger.logLevel = .error
        let intake = Intake(policy: IntakePolicy(config: .sandbox()), store: ledger, logger: logger)
        let bodies = try SmartroBodies()
        let start = ContinuousClock.now
        let outcomes = await withTaskGroup(of: IntakeResult.Outcome.self) { group in
            var next = 0
            var tally: [IntakeResult.Outcome: Int] = [:]
            func submit() {
                let i = first + next
                next += 1
                group.addTask {
                    let submission = Submission(
                        provider: .smartro, body: Array(bodies.body(i).utf8),
                        contentType: "application/x-www-form-urlencoded",
                        address: ClientAddress(peer: "127.0.0.1", client: "127.0.0.1"), receivedAt: Date(),
                        requestID: "seed-\(i)")
                    return await intake.process(submission).outcome
                }
            }
            while next < min(concurrency, count) { submit() }
            for await outcome in group {
                tally[outcome, default: 0] += 1
                if next < count { submit() }
            }
            return tally
        }
        try await ledger.close()
        let elapsed = ContinuousClock.now - start
        let accepted = outcomes[.accepted] ?? 0
        print(
            "seeded \(accepted) of \(count) in \(elapsed.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1)))) (\(outcomes.map { "\($0.key.rawValue)=\($0.value)" }.sorted().joined(separator: " ")))"
        )
        guard accepted == count else { throw ExitCode.failure }
    }
}

struct WaitFiles: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait-files",
        abstract: "Wait until a directory holds at least N entries; print the seconds it took.")

    @Argument var directory: String
    @Argument var count: Int
    @Option(help: "Give up after this many seconds.") var timeout = 600.0

    func run() throws {
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int(timeout * 1000))
        while Self.entries(in: directory) < count {
            guard ContinuousClock.now < deadline else {
                print("timeout: \(Self.entries(in: directory)) of \(count) after \(timeout) s")
                throw ExitCode.failure
            }
            usleep(10_000)
        }
        let elapsed = ContinuousClock.now - start
        print(
            String(format: "%.3f", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
    }

    /// readdir rather than FileManager: a queue of 100,000 files is counted in milliseconds.
    static func entries(in path: String) -> Int {
        guard let dir = opendir(path) else { return 0 }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { $0.first == UInt8(ascii: ".") }
            if !isDot { n += 1 }
        }
        return n
    }
}
