import ArgumentParser
import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiForward
import PGNotiIntake
import PGNotiPostgres
import PGNotiSpool
import PGNotiStore

#if canImport(Glibc)
    import Glibc
#endif

/// Opens the ledger a config names for an operator command: the SQLite file, or the shared
/// PostgreSQL database. Run as root with SQLite, the command first becomes the owner of the
/// state directory: opening the database creates its `-wal`/`-shm` sidecars, which the daemon
/// must still be able to open afterwards.
func openLedger(_ config: Config, adoptingOwner: Bool = true) async throws -> any LedgerStore {
    if let postgres = config.postgres {
        return try await PostgresLedger.open(
            PostgresSession(settings: postgres), quarantinePolicy: QuarantinePolicy(config: config),
            logger: commandLogger)
    }
    try requireDatabase(config)
    if adoptingOwner { try StateOwner.adopt(directoryOf: config.database) }
    return try Ledger.open(config)
}

/// Opens the ledger for a command that only looks: never migrating, and (SQLite) read-only,
/// never changing a byte of the database (`Ledger.openReadOnly`). As root it first becomes the
/// owner too, so a `-shm` sidecar SQLite may need stays the daemon's.
func openLedgerReadOnly(_ config: Config) async throws -> any LedgerStore {
    if let postgres = config.postgres {
        return try await PostgresLedger.open(
            PostgresSession(settings: postgres), quarantinePolicy: QuarantinePolicy(config: config), migrating: false,
            logger: commandLogger)
    }
    try requireDatabase(config)
    try StateOwner.adopt(directoryOf: config.database)
    return try Ledger.openReadOnly(config)
}

/// Runs `body` on the cluster's PostgreSQL ledger: for the commands that only a database
/// shared by the hosts has (the lease, delivery state). Closed before returning.
func withPostgresLedger<T>(
    _ postgres: PostgresSettings, _ config: Config, migrating: Bool, _ body: (PostgresLedger) async throws -> T
) async throws -> T {
    let ledger = try await PostgresLedger.open(
        PostgresSession(settings: postgres), quarantinePolicy: QuarantinePolicy(config: config), migrating: migrating,
        logger: commandLogger)
    return try await closing(ledger, body)
}

/// The PostgreSQL driver's own log lines stay out of a command's output.
let commandLogger: Logger = {
    var logger = Logger(label: "pgnoti.command")
    logger.logLevel = .critical
    return logger
}()

/// Runs `body` on the ledger and closes it before returning, thrown or not: the process exits
/// right after a command, so a close left to a detached task might never run.
func withLedger<T>(_ config: Config, readOnly: Bool = false, _ body: (any LedgerStore) async throws -> T)
    async throws -> T
{
    let ledger = try await readOnly ? openLedgerReadOnly(config) : openLedger(config)
    return try await closing(ledger, body)
}

/// `body`'s result, the ledger closed first, thrown or not.
private func closing<Store: LedgerStore, T>(_ ledger: Store, _ body: (Store) async throws -> T) async throws -> T {
    do {
        let result = try await body(ledger)
        try? await ledger.close()
        return result
    } catch {
        try? await ledger.close()
        throw error
    }
}

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Find notifications and their events. Safe while the daemon runs.",
        subcommands: [List.self, Show.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List stored notifications, newest first.")

        @OptionGroup var options: ConfigOptions
        @Option(help: "One of: \(ProviderID.allCases.map(\.rawValue).joined(separator: ", ")).") var provider: String?
        @Option(help: "Received since: ISO 8601 or a span (30m, 2h, 7d).") var since: String?
        @Option(help: "Received before: ISO 8601 or a span.") var until: String?
        @Option(help: "Only this TID.") var tid: String?
        @Option(help: "Only this order id.") var order: String?
        @Option(help: "Only this kind (payment.approved, notification.conflict …).") var kind: String?
        @Option(help: "At most this many.") var limit = 100
        @Flag(help: "One JSON object per line.") var json = false

        func validate() throws {
            // A misspelt filter would print an empty table, which reads as "nothing arrived".
            if let provider, ProviderID(rawValue: provider) == nil {
                throw ValidationError(
                    "--provider: unknown provider \"\(provider)\" (one of: \(ProviderID.allCases.map(\.rawValue).joined(separator: ", ")))"
                )
            }
            if let kind, EventKind(rawValue: kind) == nil {
                throw ValidationError(
                    "--kind: unknown kind \"\(kind)\" (one of: \(EventKind.allCases.map(\.rawValue).joined(separator: ", ")))"
                )
            }
        }

        func run() async throws {
            let config = try options.load()
            let filter = EventFilter(
                provider: provider, since: try since.map { try parseTime($0, option: "--since") },
                until: try until.map { try parseTime($0, option: "--until") }, tid: tid, orderID: order, kind: kind,
                limit: limit)
            let ledger = try await openLedgerReadOnly(config)
            let found = try await ledger.events(filter)
            try? await ledger.close()
            if json {
                for n in found { print(Self.json(n)) }
                return
            }
            let rows = found.map { n in
                [
                    KoreanTime.display(n.receivedAt), n.provider, n.kind ?? "-", n.merchantID, n.tid, n.state,
                    n.amount.map(String.init) ?? "-", n.orderID ?? "-", n.eventID,
                ]
            }
            print(
                table(["RECEIVED (KST)", "PROVIDER", "KIND", "MID", "TID", "STATE", "AMOUNT", "ORDER", "EVENT"], rows))
        }

        static func json(_ n: StoredNotification) -> String {
            var json = JSONWriter()
            json.beginObject()
            json.member("received_at", KoreanTime.iso8601(n.receivedAt))
            json.member("provider", n.provider)
            json.member("kind", n.kind)
            json.member("merchant_id", n.merchantID)
            json.member("tid", n.tid)
            json.member("state", n.state)
            json.member("amount", n.amount)
            json.member("result_code", n.resultCode)
            json.member("order_id", n.orderID)
            json.member("event_id", n.eventID)
            json.member("queue_file", n.queueFileName)
            json.member("retries", n.retries)
            json.endObject()
            return String(decoding: json.bytes, as: UTF8.self)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Show a notification by event id, TID or order id: its event, the request (masked), retries, conflicts, queue file."
        )

        @OptionGroup var options: ConfigOptions
        @Argument(help: "An event id, a TID or an order id.") var reference: String
        @Flag(help: "Also print the raw request bytes (escaped). They carry unmasked personal data.") var raw = false

        func run() async throws {
            let config = try options.load()
            try await withLedger(config, readOnly: true) { ledger in
                let found = try await ledger.lookup(reference)
                guard !found.isEmpty else {
                    throw CommandFailure("nothing stored for \(reference) (event id, TID or order id)")
                }
                if raw { printError("warning: --raw prints requests exactly as received, personal data unmasked") }
                for (index, n) in found.enumerated() {
                    if index > 0 { print("") }
                    let history = try await ledger.history(of: n)
                    print("event:         \(n.eventID) (\(n.kind ?? "-"))")
                    print(
                        "received:      \(KoreanTime.iso8601(n.receivedAt)) from \(n.client ?? "-") (peer \(n.peer ?? "-"))"
                    )
                    print("key:           \(n.provider) \(n.merchantID) \(n.tid) \(n.state)")
                    print(
                        "queue file:    \(config.postgres == nil ? Self.whereIs(n.queueFileName, queue: config.queue, inOutbox: history.inOutbox) : "\(n.queueFileName) (\(history.inOutbox ? "in the database's outbox" : "delivered from the database"))")"
                    )
                    print("retries:       \(n.retries)")
                    for retry in history.retries {
                        print(
                            "  \(KoreanTime.iso8601(retry.receivedAt)) from \(retry.client ?? "-") (peer \(retry.peer ?? "-"))"
                        )
                    }
                    if n.retries > history.retries.count {
                        print("  … \(n.retries - history.retries.count) more, counted only")
                    }
                    print(
                        "conflicts:     \(history.conflicts.count)\(n.conflictsIgnored > 0 ? " (+\(n.conflictsIgnored) beyond the limit, counted only)" : "")"
                    )
                    for conflict in history.conflicts {
                        print(
                            "  \(KoreanTime.iso8601(conflict.receivedAt)) \(conflict.newFingerprint) (stored \(conflict.storedFingerprint)) event \(conflict.conflictEventID ?? "-")"
                        )
                    }
                    print("event json:")
                    print(String(decoding: Self.maskedEvent(Array(n.eventJSON)), as: UTF8.self))
                    let setting = config.providers.first { $0.id.rawValue == n.provider }?.charset ?? .cp949
                    if let fields = try? Fields.decoding(
                        Array(n.rawBody), contentType: n.contentType, charset: setting),
                        !n.rawBody.isEmpty
                    {
                        print("request (\(fields.charset.label), personal data masked):")
                        for (name, value) in Masking.fields(fields.all) { print("  \(name) = \(value)") }
                    } else if n.rawBody.isEmpty {
                        print("request:       purged")
                    }
                    if raw {
                        print("raw:")
                        print(QuarantineCommand.Show.escaped(Array(n.rawBody)))
                    }
                }
            }
        }

        /// Where the event's file is now: a consumer moves it out of `new/` once it takes it.
        static func whereIs(_ name: String, queue: String, inOutbox: Bool) -> String {
            if inOutbox { return "\(queue)/new/\(name) (still in the outbox: not filed yet)" }
            let layout = ForwardLayout(queue: queue)
            for (directory, meaning) in [
                (layout.new, "waiting for a consumer"), (layout.cur, "claimed by the forwarder, being delivered"),
                (layout.done, "delivered"), (layout.failed, "the forwarder gave up: pgnoti forward retry"),
            ] where FileManager.default.fileExists(atPath: directory + "/" + name) {
                return "\(directory)/\(name) (\(meaning))"
            }
            return "\(name): filed, and no longer in \(queue) (taken by a consumer, or pruned after delivery)"
        }

        /// The event as filed, with its personal fields masked the way logs show them.
        static func maskedEvent(_ bytes: [UInt8]) -> [UInt8] {
            guard let stored = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
                return bytes
            }
            let object = Masking.event(stored)
            let data = try? JSONSerialization.data(
                withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            return data.map(Array.init) ?? bytes
        }
    }
}

/// What an event id looks like (`EventID.derive`): 32 lowercase hex digits.
enum EventIDFormat {
    static func isValid(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}

struct Redeliver: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put events back into the outbox, to be filed again under the same ids and names.",
        discussion: """
            Whoever holds <queue>/.outbox.lock files them: the daemon within a second if it runs,
            otherwise this command before it exits.
            """)

    @OptionGroup var options: ConfigOptions
    @Argument(help: "Event ids.") var ids: [String] = []
    @Option(help: "Every notification received since (ISO 8601 or a span).") var since: String?
    @Option(help: "With --since: received before.") var until: String?

    func validate() throws {
        guard ids.isEmpty != (since == nil) else {
            throw ValidationError("give event ids or --since, not both and not neither")
        }
        if until != nil && since == nil { throw ValidationError("--until goes with --since") }
        let malformed = ids.filter { !EventIDFormat.isValid($0) }
        if !malformed.isEmpty {
            throw ValidationError(
                "not an event id (32 lowercase hex digits): \(malformed.prefix(5).joined(separator: ", "))")
        }
    }

    func run() async throws {
        let config = try options.load()
        let context = try await CommandContext.open(config)
        if !ids.isEmpty {
            let known = try await context.ledger.knownEventIDs(ids)
            let unknown = ids.filter { !known.contains($0) }
            if !unknown.isEmpty {
                await context.close()
                throw CommandFailure(
                    "no event with id \(unknown.prefix(5).joined(separator: ", "))\(unknown.count > 5 ? " (and \(unknown.count - 5) more)" : ""); nothing was queued"
                )
            }
        }
        let since = try since.map { try parseTime($0, option: "--since") }
        let until = try until.map { try parseTime($0, option: "--until") }
        var queued = 0
        if ids.count > 300 {
            // Many at once: in chunks, with progress.
            for start in stride(from: 0, to: ids.count, by: 500) {
                let chunk = Array(ids[start..<min(start + 500, ids.count)])
                queued += try await context.ledger.redeliver(eventIDs: chunk, since: nil, until: nil)
                printError("queued \(queued) of \(ids.count)")
            }
        } else {
            queued = try await context.ledger.redeliver(eventIDs: ids, since: since, until: until)
        }
        print("queued \(queued) event(s) for filing")
        OperatorLog.record(
            "redeliver", ids: ids, outcome: "queued \(queued)",
            details: [
                "since": since.map(KoreanTime.iso8601) ?? "", "until": until.map(KoreanTime.iso8601) ?? "",
            ].filter { !$0.value.isEmpty })
        if queued > 300 { printError("filing \(queued) events …") }
        if context.queue == nil {
            print("they wait in the database's outbox")
        } else if let filed = try await context.fileCommittedEvents() {
            print("filed \(filed) into \(config.queue)/new")
        } else {
            print("the daemon holds the outbox lock; it files them")
        }
        await context.close()
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Counts by provider, kind and outcome; outbox and quarantine.")

    @OptionGroup var options: ConfigOptions
    @Option(help: "Only since: ISO 8601 or a span (30m, 2h, 7d).") var since: String?
    @Flag(help: "One JSON object.") var json = false

    func run() async throws {
        let config = try options.load()
        let since = try since.map { try parseTime($0, option: "--since") }
        let ledger = try await openLedgerReadOnly(config)
        let stats = try await ledger.stats(since: since)
        try? await ledger.close()
        // A PostgreSQL database has no queue directory: its outbox line is the whole story.
        let queue = config.postgres == nil ? try? QueueDirectory(root: URL(fileURLWithPath: config.queue)) : nil
        let pending = queue?.pendingNew()
        if json {
            var out = JSONWriter()
            out.beginObject()
            out.key("events")
            out.beginArray()
            for row in stats.byKind {
                out.beginObject()
                out.member("provider", row.provider)
                out.member("kind", row.kind)
                out.member("events", row.events)
                out.member("retries", row.retries)
                out.endObject()
            }
            out.endArray()
            out.member("conflicts", stats.conflicts)
            out.member("conflicts_ignored", stats.conflictsIgnored)
            out.key("quarantine")
            out.beginObject()
            for (reason, count) in stats.quarantineByReason { out.member(reason, count) }
            out.endObject()
            out.member("outbox_depth", stats.outboxDepth)
            out.member("oldest_in_outbox", stats.oldestInOutbox.map(KoreanTime.iso8601))
            out.member("queue_new_files", pending?.count)
            out.member("oldest_in_queue", pending?.oldest.map(KoreanTime.iso8601))
            out.endObject()
            print(String(decoding: out.bytes, as: UTF8.self))
            return
        }
        print(since.map { "since \(KoreanTime.display($0)) KST" } ?? "all time")
        print(
            table(
                ["PROVIDER", "KIND", "EVENTS", "RETRIES"],
                stats.byKind.map { [$0.provider, $0.kind, String($0.events), String($0.retries)] }))
        print("conflicts: \(stats.conflicts) filed, \(stats.conflictsIgnored) beyond the limit")
        print(
            "quarantine: "
                + (stats.quarantineByReason.isEmpty
                    ? "empty" : stats.quarantineByReason.map { "\($0.reason) \($0.count)" }.joined(separator: ", ")))
        print(
            "outbox: \(stats.outboxDepth) waiting\(stats.oldestInOutbox.map { ", oldest since \(KoreanTime.display($0)) KST" } ?? "")"
        )
        if let pending {
            print(
                "queue: \(pending.count) file(s) in new/ waiting for a consumer\(pending.oldest.map { ", oldest filed \(KoreanTime.display($0)) KST" } ?? "")"
            )
        }
    }
}
