import ArgumentParser
import Foundation
import PGNotiConfig
import PGNotiCore
import PGNotiIntake
import PGNotiRawHTTP
import PGNotiServer
import PGNotiStore

struct TossCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "toss", abstract: "TossPayments transaction files: import by hand, or pull over HTTP.",
        subcommands: [Import.self, Pull.self])

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "File the new rows of Toss files (<mid>_AUTH_<yyyymmdd>.dat, <mid>_REV_<yyyymmdd>.dat) and print a summary."
        )

        @OptionGroup var options: ConfigOptions
        @Argument(
            help:
                "Files to read, in day order with each day's AUTH before its REV; a last line without its newline is left for a later import."
        )
        var files: [String]

        /// Day by day, and a day's approvals before its cancels, whatever the order given: a
        /// cancel is filed after its approval when both are in the files.
        static func readingOrder(_ paths: [String]) -> [String] {
            paths.enumerated().sorted { a, b in
                let x = TossFile.Name(fileName: (a.element as NSString).lastPathComponent)
                let y = TossFile.Name(fileName: (b.element as NSString).lastPathComponent)
                let left = (x?.date ?? "", x?.kind == .rev ? 1 : 0, a.offset)
                let right = (y?.date ?? "", y?.kind == .rev ? 1 : 0, b.offset)
                return left < right
            }.map(\.element)
        }

        func run() async throws {
            // A first import may well come before the daemon ever ran: it creates the state.
            let config = try options.load()
            let context = try await CommandContext.open(config, creatingState: true)
            let importer = TossImporter(
                intake: context.intake, progress: context.ledger, logger: context.logger,
                finalAfterMinutes: config.toss.finalAfterMinutes)
            var failed = false
            for path in Self.readingOrder(files) {
                let name = (path as NSString).lastPathComponent
                guard let data = FileManager.default.contents(atPath: path) else {
                    printError("cannot read \(path)")
                    failed = true
                    continue
                }
                // Its modification time once read: a file still being written reads as new.
                let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
                do {
                    let summary = try await importer.ingest(
                        fileName: name, bytes: [UInt8](data), modifiedAt: modified ?? Date())
                    print(Self.describe(summary))
                    if !summary.isClean { failed = true }
                    OperatorLog.record(
                        "toss import", ids: [path],
                        outcome:
                            "\(summary.rows) rows, \(summary.new) new, \(summary.duplicates) duplicates, \(summary.bad.count) bad"
                    )
                } catch {
                    printError("\(path): \(error)")
                    OperatorLog.record("toss import", ids: [path], outcome: "failed: \(error)")
                    failed = true
                }
            }
            let filed = try await context.fileCommittedEvents()
            if filed == nil { print("the running daemon files the new events into the queue") }
            await context.close()
            if failed { throw ExitCode.failure }
        }

        /// `next` names what reads the file again: `import`, or `pull`.
        static func describe(_ summary: TossImportSummary, next: String = "import") -> String {
            var lines = [
                "\(summary.fileName): \(summary.rows) rows, \(summary.new) new, \(summary.duplicates) duplicates, \(summary.bad.count) bad"
                    + (summary.errors > 0 ? ", \(summary.errors) not stored (\(summary.firstError ?? "?"))" : "")
                    + (summary.rewritten ? " (rewritten since the last read: read again from line 1)" : "")
                    + (summary.resumedAtLine > 1 && !summary.rewritten
                        ? " (lines before \(summary.resumedAtLine) were read before)" : "")
            ]
            for bad in summary.bad {
                lines.append(
                    "  line \(bad.line): \(bad.reason): \(bad.detail)"
                        + (bad.unterminated ? " (the last line, without its newline)" : "")
                        + (bad.quarantineID.map { " (quarantine \($0))" } ?? ""))
            }
            if let line = summary.unterminatedLine {
                lines.append(
                    "  line \(line): no newline at its end yet (the file may still be being written): left for the next \(next)"
                        + (summary.unterminatedDueAt.map {
                            "; taken as it is from \(KoreanTime.display($0)) KST if the file stays unchanged"
                        } ?? ""))
            }
            if let line = summary.tookUnterminatedLine, !summary.bad.contains(where: { $0.line == line }) {
                lines.append(
                    "  line \(line): taken without its newline (its day is over and the file has not changed since)")
            }
            return lines.joined(separator: "\n")
        }
    }

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a day's rows from Toss's trxdown page ([toss] pull_url) and file the new ones.")

        @OptionGroup var options: ConfigOptions
        @Option(help: "The day, yyyymmdd (transaction day for TRX, cancel day for REV).") var date: String
        @Option(help: "TRX (approvals) or REV (cancels and refunds); both when left out.") var service: String?

        func validate() throws {
            guard date.count == 8, date.allSatisfy(\.isNumber), KoreanTime.afterDay(date, minutes: 0) != nil else {
                throw ValidationError("--date expects yyyymmdd")
            }
            if let service, TossPuller.Service(rawValue: service.uppercased()) == nil {
                throw ValidationError("--service expects TRX or REV")
            }
        }

        func run() async throws {
            let config = try options.load()
            guard config.toss.merchantID != nil, config.toss.mertKeyPath != nil else {
                printError(
                    "the pull needs toss.merchant_id and the MertKey (toss.mert_key_file or the toss-mert-key credential)"
                )
                throw ExitCode(78)
            }
            let context = try await CommandContext.open(config, creatingState: true)
            let importer = TossImporter(
                intake: context.intake, progress: context.ledger, logger: context.logger,
                finalAfterMinutes: config.toss.finalAfterMinutes)
            let puller: TossPuller
            do {
                guard let made = try TossPullerFactory.make(config, importer, context.logger) else {
                    throw ExitCode(78)
                }
                puller = made
            } catch let error as ConfigError {
                printError("\(error)")
                throw ExitCode(78)
            }
            let services =
                service.map { [TossPuller.Service(rawValue: $0.uppercased())!] } ?? TossPuller.Service.allCases
            var failed = false
            for service in services {
                do {
                    let summary = try await puller.pull(date: date, service: service)
                    print("\(service.rawValue): " + Import.describe(summary, next: "pull"))
                    if !summary.isClean { failed = true }
                } catch {
                    printError("\(error)")
                    failed = true
                }
            }
            let filed = try await context.fileCommittedEvents()
            if filed == nil { print("the running daemon files the new events into the queue") }
            await context.close()
            if failed { throw ExitCode.failure }
        }
    }
}

struct PayupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payup",
        abstract: "Payup key-in: signatures, and approve/cancel through the daemon's durable client.",
        subcommands: [Sign.self, Verify.self, Approve.self, Cancel.self, Pending.self])

    /// What a signature covers, from the flags; the key never comes from a flag.
    struct SignatureInput: ParsableArguments {
        @Argument(help: "approve or cancel") var operation: String
        @Option(help: "merchantId") var merchant: String?
        @Option(help: "orderNumber (approve)") var order: String?
        @Option(help: "amount (approve)") var amount: String?
        @Option(help: "timestamp, YYYYMMDDHHMMSS (approve)") var timestamp: String?
        @Option(help: "transactionId (cancel)") var transaction: String?
        @Option(
            help: "File holding the apiCertKey (- for stdin; whitespace trimmed). Default: [payup] api_cert_key_file.")
        var keyFile: String?

        func validate() throws {
            switch operation {
            case "approve":
                guard order != nil, amount != nil, timestamp != nil else {
                    throw ValidationError("approve needs --order, --amount and --timestamp")
                }
            case "cancel":
                guard transaction != nil else { throw ValidationError("cancel needs --transaction") }
            default: throw ValidationError("the operation is approve or cancel")
            }
        }

        func signature(_ config: Config) throws -> String {
            guard let merchant = merchant ?? config.payup.merchantID else {
                throw ValidationError("--merchant is needed (or [payup] merchant_id)")
            }
            guard let path = keyFile ?? config.payup.apiCertKeyPath else {
                throw ValidationError("--key-file is needed (or [payup] api_cert_key_file)")
            }
            let key: SecretValues
            do {
                key = try ConfigLoader().readSecret(
                    path, key: keyFile != nil ? "--key-file" : "payup.api_cert_key_file")
            } catch {
                printError("\(error)")
                throw ExitCode(78)
            }
            return key.withValues { values in
                operation == "approve"
                    ? PayupSignature.approve(
                        merchantID: merchant, orderNumber: order ?? "", amount: amount ?? "", apiCertKey: values[0],
                        timestamp: timestamp ?? "")
                    : PayupSignature.cancel(
                        merchantID: merchant, transactionID: transaction ?? "", apiCertKey: values[0])
            }
        }
    }

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the hex SHA-256 signature of an approve or cancel request (manual §2.1.1, §2.2.1).")
        @OptionGroup var options: ConfigOptions
        @OptionGroup var input: SignatureInput

        func run() throws {
            print(try input.signature(try options.load()))
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a signature; exit 0 when it matches, 1 when it does not.")
        @OptionGroup var options: ConfigOptions
        @OptionGroup var input: SignatureInput
        @Option(help: "The signature to check (hex).") var signature: String

        func run() throws {
            let expected = try input.signature(try options.load())
            if constantTimeEquals(Array(expected.utf8), Array(signature.lowercased().utf8)) {
                print("ok")
            } else {
                print("mismatch")
                throw ExitCode.failure
            }
        }
    }

    /// Sends stdin to the daemon's `/payup/<operation>` and prints what comes back.
    static func callDaemon(_ operation: String, options: ConfigOptions) throws {
        let config = try options.load()
        guard let admin = config.adminListen else {
            printError("admin_listen is off: the Payup client runs on the daemon's admin listener")
            throw ExitCode(78)
        }
        guard let tokenPath = config.payup.clientTokenPath else {
            printError("[payup] client_token_file is not set")
            throw ExitCode(78)
        }
        let token: SecretValues
        do { token = try ConfigLoader().readSecret(tokenPath, key: "payup.client_token_file") } catch {
            printError("\(error)")
            throw ExitCode(78)
        }
        let body = [UInt8](FileHandle.standardInput.readDataToEndOfFile())
        let head = token.withValues { values in
            "POST /payup/\(operation) HTTP/1.1\r\nHost: \(admin)\r\nAuthorization: Bearer \(values[0])\r\n"
                + "Content-Type: application/json; charset=utf-8\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        }
        let outcome = PayupExit.call(
            host: admin.host, port: admin.port, bytes: Array(head.utf8) + body,
            timeoutSeconds: Int(config.payup.timeoutSeconds) + 15)
        if let body = outcome.body {
            FileHandle.standardOutput.write(Data(body))
            if body.last != 0x0A { print("") }
        }
        if let message = outcome.message { printError(message) }
        if outcome.code != 0 { throw ExitCode(outcome.code) }
    }

    struct Approve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Approve a key-in payment: the request JSON (manual §2.1, without signature and timestamp) on stdin, Payup's answer on stdout. Exit 0 approved, 1 declined, 2 not sent (safe to retry), 3 unknown (never retry: check `payup pending`), 64 usage."
        )
        @OptionGroup var options: ConfigOptions
        func run() throws { try PayupCommand.callDaemon("approve", options: options) }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Cancel a payment: {\"transactionId\": \"…\"} on stdin, Payup's answer on stdout. Exit codes as for approve."
        )
        @OptionGroup var options: ConfigOptions
        func run() throws { try PayupCommand.callDaemon("cancel", options: options) }
    }

    struct Pending: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Payup calls whose outcome is unknown (sent, no answer): check them in Payup's console.")
        @OptionGroup var options: ConfigOptions
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            let config = try options.load()
            let ledger = try await openLedgerReadOnly(config)
            let intents = try await ledger.payupIntents(states: PayupIntent.State.pending)
            try? await ledger.close()
            if json {
                for intent in intents {
                    var out = JSONWriter()
                    out.beginObject()
                    out.member("amount", intent.amount)
                    out.member("created_at", KoreanTime.iso8601(intent.createdAt))
                    out.member("error", intent.error)
                    out.member("event_id", intent.eventID)
                    out.member("intent_id", intent.id)
                    out.member("merchant_id", intent.merchantID)
                    out.member("operation", intent.operation)
                    out.member("order_number", intent.orderNumber)
                    out.member("state", intent.state.rawValue)
                    out.member("timestamp", intent.timestamp)
                    out.member("transaction_id", intent.transactionID)
                    out.endObject()
                    print(String(decoding: out.bytes, as: UTF8.self))
                }
                return
            }
            if intents.isEmpty {
                print("no Payup call with an unknown outcome")
                return
            }
            print(
                table(
                    ["INTENT", "SENT (KST)", "OPERATION", "ORDER", "AMOUNT", "TRANSACTION", "STATE", "ERROR"],
                    intents.map {
                        [
                            $0.id, KoreanTime.display($0.createdAt), $0.operation, $0.orderNumber ?? "-",
                            $0.amount ?? "-",
                            $0.transactionID ?? "-", $0.state.rawValue, $0.error ?? "-",
                        ]
                    }))
        }
    }
}

/// What `payup approve|cancel` exits with: only what is known. 0 approved, 1 declined, 2 not
/// sent (the request never left pgnoti: safe to retry), 3 unknown (it may have reached Payup:
/// never retry, settle it with `payup pending`). A retry on 3 could charge a card twice.
enum PayupExit {
    struct Outcome: Equatable {
        var code: Int32
        var body: [UInt8]?
        var message: String?
    }

    static let approved: Int32 = 0
    static let declined: Int32 = 1
    static let notSent: Int32 = 2
    static let unknown: Int32 = 3

    static func call(host: String, port: Int, bytes: [UInt8], timeoutSeconds: Int) -> Outcome {
        let connection: RawHTTPConnection
        do {
            connection = try RawHTTPConnection(host: host, port: port, timeoutSeconds: timeoutSeconds)
        } catch {
            return Outcome(
                code: notSent,
                message: "not sent: cannot reach the daemon's admin listener at \(host):\(port): \(error)")
        }
        do {
            let response = try connection.exchange(bytes)
            return judge(status: response.status, body: response.body)
        } catch {
            // The daemon had the request: it may have sent it to Payup before the answer broke.
            return Outcome(
                code: unknown,
                message:
                    "outcome unknown: the daemon took the request and no answer came back (\(error)); do not retry: check `pgnoti payup pending`"
            )
        }
    }

    /// The daemon's answer read as an exit code. Pure.
    static func judge(status: Int, body: [UInt8]) -> Outcome {
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        if let object {
            switch Payup.classify(object) {
            case .success: return Outcome(code: approved, body: body)
            case .declined(let code):
                return Outcome(code: declined, body: body, message: "declined: responseCode \(code)")
            case .unclassifiable: break
            }
            switch object["outcome"] as? String {
            case "not_sent":
                return Outcome(code: notSent, body: body, message: "not sent: Payup was never reached; safe to retry")
            case "unknown":
                return Outcome(
                    code: unknown, body: body,
                    message: "outcome unknown: do not retry; check `pgnoti payup pending` and Payup's console")
            default: break
            }
            // Refused by the daemon before anything was journaled or sent (a malformed request,
            // a wrong token, the ledger unable to store the intent).
            if [400, 401, 403, 404, 405, 413, 415, 503].contains(status), object["error"] != nil {
                return Outcome(code: notSent, body: body, message: "not sent: HTTP \(status)")
            }
        }
        return Outcome(
            code: unknown, body: body,
            message:
                "outcome unknown: HTTP \(status) without an outcome pgnoti recognises; do not retry: check `pgnoti payup pending`"
        )
    }
}
