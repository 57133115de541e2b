import ArgumentParser
import Foundation
import PGNotiConfig
import PGNotiCore
import PGNotiIntake
import PGNotiStore

struct QuarantineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine",
        abstract: "Inspect, release or drop refused requests. Safe to run while the daemon runs.",
        subcommands: [List.self, Show.self, Release.self, Drop.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List quarantined requests, newest first.")

        @OptionGroup var options: ConfigOptions
        @Option(help: "Only this reason (signature_mismatch, source_not_allowed …).") var reason: String?
        @Option(help: "Only since this time: ISO 8601 (2026-11-23, 2026-11-23T10:00+09:00) or a span (30m, 2h, 7d).")
        var since: String?
        @Option(help: "At most this many.") var limit = 100
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            let config = try options.load()
            let since = try since.map { try parseTime($0, option: "--since") }
            try await withLedger(config, readOnly: true) { ledger in
                let items = try await ledger.quarantined(reason: reason, since: since, limit: limit)
                if json {
                    for item in items { print(Self.json(item)) }
                    return
                }
                let rows = items.map { item in
                    [
                        String(item.id), KoreanTime.display(item.receivedAt), item.provider, item.reason,
                        item.client ?? "-", item.merchantID ?? "-", item.tid ?? "-", String(item.size),
                        item.releasedEventID.map { "released \($0)" }
                            ?? (item.isPurged ? "purged" : item.parsed ? "held" : "garbage"),
                    ]
                }
                print(
                    table(
                        ["ID", "RECEIVED (KST)", "PROVIDER", "REASON", "CLIENT", "MID", "TID", "BYTES", "STATUS"], rows)
                )
            }
        }

        static func json(_ item: QuarantinedRequest) -> String {
            var json = JSONWriter()
            json.beginObject()
            json.member("id", Int(item.id))
            json.member("received_at", KoreanTime.iso8601(item.receivedAt))
            json.member("provider", item.provider)
            json.member("reason", item.reason)
            json.member("detail", item.detail)
            json.member("peer", item.peer)
            json.member("client", item.client)
            json.member("forwarded_for", item.forwardedFor)
            json.member("merchant_id", item.merchantID)
            json.member("tid", item.tid)
            json.member("parsed", item.parsed)
            json.member("purged", item.isPurged)
            json.member("bytes", item.size)
            json.member("released_event_id", item.releasedEventID)
            json.endObject()
            return String(decoding: json.bytes, as: UTF8.self)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one quarantined request: decoded fields, personal data masked.")

        @OptionGroup var options: ConfigOptions
        @Argument(help: "Quarantine ID.") var id: Int64
        @Flag(help: "Also print the raw bytes (escaped). They carry unmasked personal data.") var raw = false

        func run() async throws {
            let config = try options.load()
            try await withLedger(config, readOnly: true) { ledger in
                guard let item = try await ledger.quarantined(id: id) else {
                    throw CommandFailure("no quarantined request with ID \(id)")
                }
                print("id:            \(item.id)")
                print("received:      \(KoreanTime.iso8601(item.receivedAt))")
                print("provider:      \(item.provider)")
                print("reason:        \(item.reason)")
                print("detail:        \(item.detail)")
                print("peer:          \(item.peer ?? "-")")
                print("client:        \(item.client ?? "-")")
                print("forwarded-for: \(item.forwardedFor ?? "-")")
                print("content-type:  \(item.contentType ?? "-")")
                print(
                    "path secret:   \(item.pathSecretSHA256 == nil ? "none presented" : "presented (only its SHA-256 is stored)")"
                )
                print("bytes:         \(item.size)\(item.isPurged ? " (purged: the body is gone)" : "")")
                if let released = item.releasedEventID {
                    print("released:      \(released) at \(item.releasedAt.map(KoreanTime.iso8601) ?? "-")")
                }
                let provider = ProviderID(rawValue: item.provider)
                let setting = config.providers.first { $0.id == provider }?.charset ?? .cp949
                if item.isPurged {
                    print("request:       purged")
                    return
                }
                do {
                    let fields = try Fields.decoding(
                        Array(item.rawBody), contentType: item.contentType, charset: setting)
                    print("fields (\(fields.charset.label), personal data masked):")
                    for (name, value) in Masking.fields(fields.all) { print("  \(name) = \(value)") }
                } catch {
                    print("fields:        not decodable (\(error))")
                }
                if raw {
                    printError("warning: --raw prints the request exactly as received, personal data unmasked")
                    print("raw:")
                    print(Self.escaped(Array(item.rawBody)))
                }
            }
        }

        /// Printable ASCII as is, everything else as \xNN, so the bytes survive a terminal.
        static func escaped(_ bytes: [UInt8]) -> String {
            var out = ""
            for b in bytes {
                if b >= 0x20 && b < 0x7F && b != UInt8(ascii: "\\") {
                    out.append(Character(UnicodeScalar(b)))
                } else {
                    out += String(format: "\\x%02X", b)
                }
            }
            return out
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run quarantined requests through the intake again, with the current configuration.",
            discussion: """
                Prints one line per item: `accepted <event id>`, `duplicate <event id>` or `refused <reason>`.
                Events are filed into the queue before the command exits, unless the running daemon holds
                the outbox lock; then the daemon files them within a second.
                """)

        @OptionGroup var options: ConfigOptions
        @Argument(help: "Quarantine IDs.") var ids: [Int64] = []
        @Option(help: "Every item with this reason.") var reason: String?
        @Option(help: "With --reason: only since this time (ISO 8601 or a span such as 2h).") var since: String?

        func validate() throws {
            guard ids.isEmpty != (reason == nil) else {
                throw ValidationError("give quarantine IDs or --reason, not both and not neither")
            }
            if since != nil && reason == nil { throw ValidationError("--since goes with --reason") }
        }

        func run() async throws {
            // Release verifies again (SignValue, path secret), so it needs every secret: one it
            // cannot read is named with the permission that is missing.
            let config = try options.load(requiringSecrets: true)
            let since = try since.map { try parseTime($0, option: "--since") }
            let context = try await CommandContext.open(config)
            var targets = ids
            if let reason {
                targets = try await context.ledger.quarantined(reason: reason, since: since, limit: 1_000_000)
                    .filter { $0.releasedEventID == nil }.map(\.id).reversed()
            }
            let releaser = QuarantineRelease(
                quarantine: context.ledger, intake: context.intake, trustedProxies: config.trustedProxies)
            var failures = 0
            var outcomes: [String] = []
            for id in targets {
                let outcome = await releaser.release(id: id)
                print("\(outcome)")
                printError("quarantine \(id): \(outcome)")
                outcomes.append("\(id): \(outcome)")
                switch outcome {
                case .accepted, .duplicate: break
                // Anything not taken in is a release that did not happen: say so in the status.
                default: failures += 1
                }
            }
            OperatorLog.record(
                "release", ids: targets.map(String.init),
                outcome: failures == 0 ? "released \(targets.count)" : "\(failures) of \(targets.count) not released",
                details: ["results": outcomes.joined(separator: "; ")])
            if context.queue == nil {
                printError("the events wait in the database's outbox")
            } else if let filed = try await context.fileCommittedEvents() {
                printError("filed \(filed) event(s) into \(config.queue)/new")
            } else {
                printError("the daemon holds the outbox lock; it files the events")
            }
            await context.close()
            if failures > 0 { throw ExitCode(1) }
        }
    }

    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete quarantined requests.")

        @OptionGroup var options: ConfigOptions
        @Argument(help: "Quarantine IDs.") var ids: [Int64]

        func run() async throws {
            let config = try options.load()
            let ledger = try await openLedger(config)
            let removed: [Int64]
            do { removed = try await ledger.dropQuarantined(ids: ids) } catch {
                try? await ledger.close()
                throw error
            }
            try? await ledger.close()
            let missing = ids.filter { !removed.contains($0) }
            print("dropped \(removed.count) of \(ids.count)")
            OperatorLog.record(
                "drop", ids: ids.map(String.init), outcome: "dropped \(removed.count) of \(ids.count)")
            if !missing.isEmpty {
                throw CommandFailure(
                    "no quarantined request with ID \(missing.map(String.init).joined(separator: ", "))")
            }
        }
    }
}
