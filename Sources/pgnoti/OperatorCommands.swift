import ArgumentParser
import Foundation
import PGNotiConfig
import PGNotiCore
import PGNotiForward
import PGNotiIntake
import PGNotiSpool
import PGNotiStore

#if canImport(Glibc)
    import Glibc
#endif

/// Opens the ledger a config names for an operator command. Run as root, the command first
/// becomes the owner of the state directory: opening the database creates its `-wal`/`-shm`
/// sidecars, which the daemon must still be able to open afterwards.
func openLedger(_ config: Config, adoptingOwner: Bool = true) throws -> Ledger {
    try requireDatabase(config)
    if adoptingOwner { try StateOwner.adopt(directoryOf: config.database) }
    return try Ledger.open(config)
}

/// Runs `body` on the ledger and closes it before returning, thrown or not: the process exits
/// right after a command, so a close left to a detached task might never run.
func withLedger<T>(_ config: Config, _ body: (Ledger) async throws -> T) async throws -> T {
    let ledger = try openLedger(config)
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
            let filter = Ledger.EventFilter(
                provider: provider, since: try since.map { try parseTime($0, option: "--since") },
                until: try until.map { try parseTime($0, option: "--until") }, tid: tid, orderID: order, kind: kind,
                limit: limit)
            let ledger = try openLedger(config)
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
            try await withLedger(config) { ledger in
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
                        "queue file:    \(Self.whereIs(n.queueFileName, queue: config.queue, inOutbox: history.inOutbox))"
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
        let context = try CommandContext.open(config)
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
                queued += try await context.ledger.redeliver(eventIDs: chunk)
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
        if let filed = try await context.fileCommittedEvents() {
            print("filed \(filed) into \(config.queue)/new")
        } else {
            print("the daemon holds the outbox lock; it files them")
        }
        await context.close()
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a consistent copy of the database while the daemon runs (VACUUM INTO), mode 0600.",
        discussion: """
            `backup FILE` writes one copy. `backup --dated DIR` writes DIR/pgnoti-YYYYMMDD-HHMMSS.sqlite and
            keeps the newest --keep copies there (what pgnoti-backup.timer runs); it refuses to start when
            DIR's file system has less free space than the database's size plus min_free_bytes.
            """)

    @OptionGroup var options: ConfigOptions
    @Argument(help: "Where to write the copy; must not exist.") var file: String?
    @Option(help: "Write a dated copy into this directory instead of FILE.") var dated: String?
    @Option(help: "With --dated: how many dated copies to keep.") var keep = 14

    func validate() throws {
        guard (file == nil) != (dated == nil) else { throw ValidationError("give FILE or --dated DIR (one of them)") }
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1") }
    }

    func run() async throws {
        let config = try options.load()
        try requireDatabase(config)
        var target = file ?? ""
        if let dated {
            try FileManager.default.createDirectory(
                atPath: dated, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let size = (try? FileManager.default.attributesOfItem(atPath: config.database)[.size] as? Int) ?? 0
            let needed = size + config.minFreeBytes
            if let free = FreeSpace.bytes(at: dated), free < needed {
                throw CommandFailure(
                    "not backing up: \(dated) has \(free) bytes free, under the database's \(size) bytes plus min_free_bytes (\(config.minFreeBytes))"
                )
            }
            target = dated + "/" + BackupName.make(Date())
        }
        guard !FileManager.default.fileExists(atPath: target) else { throw CommandFailure("\(target) already exists") }
        // The copy is the operator's file, written where they ask: no switch to the state's
        // owner, who may not be allowed to write there. (SQLite gives sidecars it creates as
        // root to the database file's owner.)
        let ledger = try openLedger(config, adoptingOwner: false)
        // The copy holds raw bodies (names, phones): nobody but its owner reads it, whatever
        // the shell's umask.
        let previous = umask(0o077)
        do {
            try await ledger.backup(to: target)
            umask(previous)
        } catch {
            umask(previous)
            try? await ledger.close()
            // A partial copy (a full disk) must not block the next try with "already exists".
            for leftover in [target, target + "-journal", target + "-wal", target + "-shm"] {
                try? FileManager.default.removeItem(atPath: leftover)
            }
            throw CommandFailure("backup to \(target) failed: \(error)")
        }
        try? await ledger.close()
        chmod(target, 0o600)
        let size = (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? Int) ?? 0
        print("backed up \(config.database) to \(target) (\(size) bytes)")
        if let dated {
            let pruned = BackupName.prune(directory: dated, keep: keep)
            if !pruned.isEmpty {
                print(
                    "removed \(pruned.count) older cop\(pruned.count == 1 ? "y" : "ies"): \(pruned.joined(separator: ", "))"
                )
            }
        }
    }
}

/// Dated backup names sort by time, so pruning keeps the last ones by name alone.
enum BackupName {
    static func make(_ date: Date) -> String {
        "pgnoti-" + KoreanTime.compactStamp(date) + ".sqlite"
    }

    static func prune(directory: String, keep: Int) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix("pgnoti-") && $0.hasSuffix(".sqlite") }.sorted()
        let old = Array(names.dropLast(keep))
        for name in old { try? FileManager.default.removeItem(atPath: directory + "/" + name) }
        return old
    }
}

/// The choices `purge` and `retention` share: they delete, so they show what they would do and
/// act only on a confirmation.
struct DeletionOptions: ParsableArguments {
    @Flag(help: "Only print what would be purged.") var dryRun = false
    @Flag(help: "Do it without asking (required without a terminal).") var yes = false
}

/// Counts what a purge before `cutoff` would change, asks, then purges in short batches that
/// leave the daemon's ACK path free, stopping if the disk runs low.
func runPurge(_ config: Config, cutoff: Date, command: String, options: DeletionOptions) async throws {
    let ledger = try openLedger(config)
    let candidates: Ledger.PurgeCounts
    do { candidates = try await ledger.purgeCandidates(before: cutoff) } catch {
        try? await ledger.close()
        throw error
    }
    print(
        "\(options.dryRun ? "would purge" : "to purge") before \(KoreanTime.iso8601(cutoff)): \(describe(candidates))")
    if options.dryRun {
        try? await ledger.close()
        return
    }
    if !options.yes {
        guard isatty(STDIN_FILENO) == 1 else {
            try? await ledger.close()
            printError("\(command) deletes personal data for good: pass --yes to confirm, or --dry-run to look first")
            throw ExitCode(64)
        }
        FileHandle.standardError.write(Data("pgnoti: purge these? [y/N] ".utf8))
        guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
            try? await ledger.close()
            print("nothing purged")
            return
        }
    }
    let database = config.database
    let minimum = config.minFreeBytes
    let counts: Ledger.PurgeCounts
    do {
        counts = try await ledger.purge(before: cutoff) {
            FreeSpace.bytes(at: (database as NSString).deletingLastPathComponent).map { $0 >= minimum } ?? true
        }
    } catch {
        try? await ledger.close()
        OperatorLog.record(command, outcome: "failed: \(error)", details: ["before": KoreanTime.iso8601(cutoff)])
        throw CommandFailure("\(command) failed: \(error)")
    }
    try? await ledger.close()
    print("purged before \(KoreanTime.iso8601(cutoff)): \(describe(counts))")
    OperatorLog.record(
        command, outcome: counts.stopped == nil ? "done" : "stopped: low on space",
        details: [
            "before": KoreanTime.iso8601(cutoff), "notifications": String(counts.notifications),
            "conflicts": String(counts.conflicts), "quarantine": String(counts.quarantine),
        ])
    if counts.stopped == .lowOnSpace {
        throw CommandFailure(
            "stopped early: free space under \(database)'s directory fell below min_free_bytes (\(minimum)); what was purged stays purged"
        )
    }
}

private func describe(_ counts: Ledger.PurgeCounts) -> String {
    "\(counts.notifications) notification(s), \(counts.conflicts) conflict(s), \(counts.quarantine) quarantined request(s), \(counts.retries) retry record(s)"
}

struct Purge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove raw bodies and personal fields from old notifications and quarantine.",
        discussion: """
            Keeps dedup keys, event ids, amounts and results, so retries are still recognised and the
            ledger still answers "did this payment arrive". How long payment records must be kept is
            the merchant's legal decision. Shows the counts and asks first (--yes to skip, --dry-run
            to only look); works in short batches so the daemon keeps ACKing.
            """)

    @OptionGroup var options: ConfigOptions
    @Option(
        name: .customLong("older-than"),
        help: "ISO 8601, or an age in d, h, min or s (400d). A bare m is refused as ambiguous.")
    var olderThan: String
    @OptionGroup var deletion: DeletionOptions
    @Flag(help: "Allow an age under one day.") var force = false

    func run() async throws {
        let config = try options.load()
        let now = Date()
        let cutoff: Date
        do { cutoff = try TimeSpec.cutoff(olderThan, now: now) } catch {
            throw ValidationError("--older-than: \(error)")
        }
        if now.timeIntervalSince(cutoff) < 86_400 && !force {
            throw ValidationError(
                "--older-than \(olderThan) reaches back less than a day: that strips today's notifications; pass --force if you mean it"
            )
        }
        try await runPurge(config, cutoff: cutoff, command: "purge", options: deletion)
    }
}

struct Retention: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the configured retention policy once (what the daemon does daily).",
        discussion: """
            Purges what is older than `retention` in the configuration, as `purge --older-than` would.
            Shows the counts and asks first (--yes to skip, --dry-run to only look).
            """)

    @OptionGroup var options: ConfigOptions
    @OptionGroup var deletion: DeletionOptions

    func run() async throws {
        let config = try options.load()
        guard let retention = config.retentionSeconds else {
            throw CommandFailure("retention is off in the configuration (set retention = \"400d\" to use it)")
        }
        try await runPurge(
            config, cutoff: Date().addingTimeInterval(-retention), command: "retention", options: deletion)
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
        let ledger = try openLedger(config)
        let stats = try await ledger.stats(since: since)
        try? await ledger.close()
        let queue = try? QueueDirectory(root: URL(fileURLWithPath: config.queue))
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
