import ArgumentParser
import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiForward
import PGNotiLogging
import PGNotiPostgres
import PGNotiServer
import PGNotiSpool

struct ForwardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Deliver queued events to the merchant's app as signed webhooks (Standard Webhooks).",
        subcommands: [ForwardRun.self, ForwardStatusCommand.self, ForwardRetryCommand.self],
        defaultSubcommand: ForwardRun.self)
}

struct ForwardRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract:
            "Claim events from <queue>/new/ (or, with PostgreSQL, the database's outbox) and POST each to [forward] url until it answers 2xx."
    )

    @OptionGroup var options: ConfigOptions
    @Option(help: "The app's webhook URL (overrides forward.url).") var url: String?
    @Option(help: "File holding the whsec_ signing secret, - for stdin (overrides forward.secret_file).")
    var secretFile: String?

    func run() async throws {
        let config = try options.load()
        guard let target = url ?? config.forward.url else {
            // pgnoti-forward.service starts on the shipped config before the app's URL is known:
            // a configuration to finish, which systemd does not restart-loop on (78).
            printError("forward.url: no webhook URL: set [forward] url in the config (or pass --url)")
            throw ExitCode(78)
        }
        guard let parsed = URL(string: target), ["http", "https"].contains(parsed.scheme?.lowercased() ?? "") else {
            throw ValidationError("--url expects an http:// or https:// URL")
        }
        let secret: WebhookSecret
        do {
            secret = try ConfigLoader().forwardSecret(config.forward, path: secretFile)
        } catch {
            printError("\(error)")
            throw ExitCode(78)
        }
        let delivery = WebhookDelivery(
            url: target, secret: secret, timeout: .milliseconds(Int64(config.forward.timeoutSeconds * 1000)),
            connectTimeout: .milliseconds(Int64(config.forward.connectTimeoutSeconds * 1000)))
        try await runConsumer(config: config, delivery: delivery, describing: ["url": .string(target)])
    }
}

struct Consume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Run a command per queued event: event JSON on stdin, PGNOTI_EVENT_ID and PGNOTI_EVENT_KIND set; exit 0 means done."
    )

    @OptionGroup var options: ConfigOptions
    @Option(help: "Shell command run with /bin/sh -c for each event.") var exec: String
    @Option(help: "Seconds the command may run before it is killed and the event retried.")
    var timeoutSeconds: Double = 60

    func run() async throws {
        let config = try options.load()
        let delivery = ExecDelivery(command: exec, timeout: .milliseconds(Int64(timeoutSeconds * 1000)))
        try await runConsumer(config: config, delivery: delivery, describing: ["exec": .string(exec)])
    }
}

/// Runs the forwarder until SIGTERM: on the queue directory once it holds the consumer lock, or,
/// with a PostgreSQL database, on the database's outbox, delivering while it holds the lease.
func runConsumer(config: Config, delivery: any EventDelivery, describing: Logger.Metadata) async throws {
    let sink = LogSink.standardOutput()
    let logger = Logger.json(level: config.logLevel, sink: sink)
    defer { sink.flush() }
    let forward = config.forward
    let settings = ForwardSettings(
        concurrency: forward.concurrency,
        retry: RetrySchedule(
            initial: .milliseconds(Int64(forward.retryInitialSeconds * 1000)),
            giveUpAfter: .milliseconds(Int64(forward.giveUpAfterHours * 3_600_000))),
        keepDone: .seconds(Int64(forward.keepDoneDays * 86_400)))
    var metadata = describing
    metadata["concurrency"] = .stringConvertible(forward.concurrency)
    metadata["timeout_seconds"] = .stringConvertible(forward.timeoutSeconds)
    metadata["connect_timeout_seconds"] = .stringConvertible(forward.connectTimeoutSeconds)
    metadata["give_up_after_hours"] = .stringConvertible(forward.giveUpAfterHours)
    if let postgres = config.postgres {
        metadata["database"] = .string(config.database)
        metadata["lease_seconds"] = .stringConvertible(forward.leaseSeconds)
        var session = PostgresSession(settings: postgres)
        // The forwarder's statements are one at a time: the writer's session and one reader.
        session.poolSize = 2
        // Connects (and migrates) in the background: a forwarder started before its database
        // waits for it, without the lease, instead of failing.
        let ledger = PostgresLedger.starting(session, logger: logger)
        let source = DatabaseEventSource(
            ledger: ledger, leaseDuration: .milliseconds(Int64(forward.leaseSeconds * 1000)),
            attemptTimeout: .milliseconds(Int64(forward.timeoutSeconds * 1000)), logger: logger)
        logger.info("consumer starting", metadata: metadata)
        let forwarder = Forwarder(source: source, delivery: delivery, settings: settings, logger: logger)
        defer { logger.info("consumer stopped") }
        do {
            try await ConsumerRunner.run(forwarder, logger: logger)
            try? await ledger.close()
        } catch {
            try? await ledger.close()
            printError("\(error)")
            throw ExitCode.failure
        }
        return
    }
    let layout = ForwardLayout(queue: config.queue)
    do {
        try FileManager.default.createDirectory(atPath: config.queue + "/new", withIntermediateDirectories: true)
    } catch {
        printError("cannot create \(config.queue)/new: \(error.localizedDescription)")
        throw ExitCode.failure
    }
    // A second's patience: `forward status` (or the daemon's /metrics) may be looking at the
    // lock at this very moment.
    let taken: ConsumerLock?
    do {
        taken = try await ConsumerLock.acquire(layout, waitingUpTo: .seconds(1))
    } catch {
        printError("\(error)")
        throw ExitCode.failure
    }
    guard let lock = taken else {
        let holder = ConsumerLock.holder(layout).pid.map { " (pid \($0))" } ?? ""
        printError(
            "another consumer already runs on \(config.queue)\(holder): the queue directory is locked (pid in \(layout.lock))"
        )
        throw ExitCode.failure
    }
    metadata["queue"] = .string(config.queue)
    logger.info("consumer starting", metadata: metadata)
    let forwarder = Forwarder(layout: layout, delivery: delivery, settings: settings, logger: logger)
    do {
        try await ConsumerRunner.run(forwarder, logger: logger)
    } catch {
        printError("\(error)")
        throw ExitCode.failure
    }
    logger.info("consumer stopped")
    withExtendedLifetime(lock) {}
}

struct ForwardStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Whether a forwarder runs (pid), pending, in flight, retrying (next attempt, last error), failed, delivered in the last hour."
    )

    @OptionGroup var options: ConfigOptions
    @Flag(help: "One JSON object instead of text.") var json = false

    func run() async throws {
        let config = try options.load()
        let status: ForwardStatus
        let neverForwarded: Bool
        if let postgres = config.postgres {
            // The whole cluster's: every host reads the same rows.
            status = try await withPostgresLedger(postgres, config, migrating: false) { try await $0.forwardStatus() }
            neverForwarded = false
        } else {
            let layout = ForwardLayout(queue: config.queue)
            // Zeros from a queue no forwarder ever ran on would read as "all delivered".
            neverForwarded = !FileManager.default.fileExists(atPath: layout.base)
            status = ForwardStatus.read(layout)
        }
        if json {
            var out = JSONWriter()
            out.beginObject()
            out.member("delivered_last_hour", status.deliveredLastHour)
            out.member("never_forwarded", neverForwarded)
            out.key("failed")
            write(status.failed, to: &out)
            out.member("in_flight", status.inFlight)
            out.member("pending", status.pending)
            out.member("pending_claimed", status.pendingClaimed)
            out.member("holder", status.holder)
            out.member("pid", status.pid.map { Int($0) })
            out.key("retrying")
            write(status.retrying, to: &out)
            out.member("running", status.running)
            out.endObject()
            print(String(decoding: out.bytes, as: UTF8.self))
            return
        }
        if neverForwarded {
            print(
                "never forwarded: no forwarder has run on \(config.queue) (pgnoti-forward.service, README \"Forwarding events to your app\")"
            )
        }
        let who = status.holder.map { " (\($0) holds the lease)" } ?? status.pid.map { " (pid \($0))" } ?? ""
        print("forwarder                   " + (status.running ? "running" + who : "not running"))
        print(
            "pending                     \(status.pending)"
                + (status.pendingClaimed > 0 ? " (\(status.pendingClaimed) claimed)" : ""))
        print("in flight                   \(status.inFlight)")
        print("retrying                    \(status.retrying.count)")
        if !status.retrying.isEmpty {
            print(
                table(
                    ["  EVENT", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"],
                    status.retrying.map { entry in
                        [
                            "  " + (entry.record?.eventID ?? entry.name), String(entry.record?.attempts ?? 0),
                            entry.record?.nextAttemptAt.map { KoreanTime.display(Date(timeIntervalSince1970: $0)) }
                                ?? "-",
                            entry.record?.lastError ?? "-",
                        ]
                    }))
        }
        print("failed                      \(status.failed.count)")
        if !status.failed.isEmpty {
            print(
                table(
                    ["  EVENT", "ATTEMPTS", "LAST ERROR"],
                    status.failed.map { entry in
                        [
                            "  " + (ForwardLayout.eventID(fromFileName: entry.name) ?? entry.name),
                            String(entry.record?.attempts ?? 0), entry.record?.lastError ?? "-",
                        ]
                    }))
        }
        print("delivered in the last hour  \(status.deliveredLastHour)")
    }

    private func write(_ entries: [ForwardStatus.Entry], to out: inout JSONWriter) {
        out.beginArray()
        for entry in entries {
            out.beginObject()
            out.member("attempts", entry.record?.attempts ?? 0)
            out.member("event_id", ForwardLayout.eventID(fromFileName: entry.name) ?? entry.name)
            out.member("file", entry.name)
            out.member("last_error", entry.record?.lastError)
            out.member(
                "next_attempt_at",
                entry.record?.nextAttemptAt.map { KoreanTime.iso8601(Date(timeIntervalSince1970: $0)) })
            out.endObject()
        }
        out.endArray()
    }
}

struct ForwardRetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry", abstract: "Send failed events again: back into forward/cur/ with a fresh retry budget.")

    @OptionGroup var options: ConfigOptions
    @Argument(help: "Event ids (or queue file names) from `forward status`.") var ids: [String] = []
    @Flag(help: "Every event in forward/failed/.") var allFailed = false

    func validate() throws {
        guard allFailed != !ids.isEmpty else { throw ValidationError("give event ids or --all-failed (not both)") }
    }

    func run() async throws {
        let config = try options.load()
        let result: ForwardRetry.Result
        let failedPlace: String
        if let postgres = config.postgres {
            result = try await withPostgresLedger(postgres, config, migrating: true) {
                try await $0.retryFailed(ids: allFailed ? nil : ids)
            }
            failedPlace = "the database's failed events"
        } else {
            let layout = ForwardLayout(queue: config.queue)
            result = allFailed ? try ForwardRetry.retryAllFailed(layout) : try ForwardRetry.retry(layout, ids: ids)
            failedPlace = layout.failed
        }
        for name in result.moved { print("retrying \(ForwardLayout.eventID(fromFileName: name) ?? name)") }
        OperatorLog.record(
            "retry", ids: allFailed ? ["--all-failed"] : ids,
            outcome: "retrying \(result.moved.count), not found \(result.notFound.count)")
        for id in result.notFound { printError("\(id): not in \(failedPlace)") }
        if result.moved.isEmpty && !allFailed { throw ExitCode.failure }
        if result.moved.isEmpty { print("nothing failed") }
    }
}
