import Foundation
import PGNotiRawHTTP
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The Payup client's exit code says only what is known: an app that retries on "not sent"
/// must never be retrying a payment that reached Payup.
extension EndToEnd {
    @Suite struct PayupOutcomeEndToEndTests {
        typealias Sources = SourcesEndToEndTests

        @Test func anHTTP500CarryingApprovalIsAnApprovalEverywhere() async throws {
            let setup = try await Sources.payup("payup-500")
            defer { setup.daemon.stop() }
            let result = try await Sources.call(setup, "approve", Sources.approval(order: "HTTP500-1"))
            #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
            try await waitUntil(timeout: .seconds(10), "one event") { try setup.daemon.queueFiles().count == 1 }
            let event = try #require(try Sources.queueEvents(setup.daemon).first)
            #expect(event["kind"] as? String == "payment.approved")
        }

        @Test func anAnswerWithoutAResponseCodeIsUnknownAndPending() async throws {
            let setup = try await Sources.payup("payup-null")
            defer { setup.daemon.stop() }
            let result = try await Sources.call(setup, "approve", Sources.approval(order: "NULLCODE-1"))
            #expect(result.status == 3, "\(result.stdout) \(result.stderr)")
            try await waitUntil(timeout: .seconds(10), "one event") { try setup.daemon.queueFiles().count == 1 }
            let event = try #require(try Sources.queueEvents(setup.daemon).first)
            #expect(event["kind"] as? String == "payment.unknown" && event["order_id"] as? String == "NULLCODE-1")
            let pending = try await QuarantineEndToEndTests.runSplit(
                ["payup", "pending", "--config", setup.config], in: setup.dir)
            #expect(pending.stdout.contains("NULLCODE-1") && pending.stdout.contains("unknown"), "\(pending.stdout)")
            let quarantine = try await QuarantineEndToEndTests.runSplit(
                ["quarantine", "list", "--json", "--config", setup.config], in: setup.dir)
            #expect(quarantine.stdout.isEmpty, "nothing refused as garbage: \(quarantine.stdout)")
        }

        @Test func echoedCardDataIsNeverKept() async throws {
            let setup = try await Sources.payup("payup-echo")
            let result = try await Sources.call(setup, "approve", Sources.approval(order: "ECHO-1"))
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stdout.contains(Sources.card), "not even relayed to the app")
            try await waitUntil(timeout: .seconds(10), "one event") { try setup.daemon.queueFiles().count == 1 }
            let shown = try await QuarantineEndToEndTests.runSplit(
                ["events", "show", "ECHO-1", "--config", setup.config], in: setup.dir)
            #expect(shown.status == 0 && !shown.stdout.contains(Sources.card))
            _ = try await setup.daemon.terminate()
            #expect(!setup.daemon.logText.contains(Sources.card))
            let state = setup.dir.appendingPathComponent("state")
            for file in try FileManager.default.subpathsOfDirectory(atPath: state.path) {
                if let data = FileManager.default.contents(atPath: state.appendingPathComponent(file).path) {
                    #expect(data.range(of: Data(Sources.card.utf8)) == nil, "card number in \(file)")
                    #expect(data.range(of: Data("890302".utf8)) == nil, "birthday in \(file)")
                }
            }
        }

        /// The daemon dies after handing the request to Payup: the CLI cannot know what
        /// happened, so it must not say "not sent".
        @Test func aDaemonKilledMidCallIsUnknownNotNotSent() async throws {
            let setup = try await Sources.payup("payup-killed")
            let process = Process()
            process.executableURL = DaemonProcess.binary
            process.arguments = ["payup", "approve", "--config", setup.config]
            process.currentDirectoryURL = setup.dir
            let input = Pipe()
            let output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            process.standardError = output
            let collected = PipeCollector(output)
            try process.run()
            try input.fileHandleForWriting.write(contentsOf: Data(Sources.approval(order: "SLOW-KILL").utf8))
            try input.fileHandleForWriting.close()
            try await waitUntil(timeout: .seconds(10), "Payup to receive the request") {
                (try? String(contentsOf: setup.log, encoding: .utf8))?.contains("SLOW-KILL") == true
            }
            try await setup.daemon.killHard()
            try await waitUntil(timeout: .seconds(30), "the CLI to exit") { !process.isRunning && collected.ended }
            let said = collected.text
            #expect(process.terminationStatus == 3, "\(said)")
            #expect(said.contains("do not retry"))
            // The intent is still there for the operator.
            let pending = try await QuarantineEndToEndTests.runSplit(
                ["payup", "pending", "--config", setup.config], in: setup.dir)
            #expect(pending.stdout.contains("SLOW-KILL"), "\(pending.stdout)")
        }

        @Test func aDaemonThatIsNotRunningIsNotSent() async throws {
            let setup = try await Sources.payup("payup-down")
            _ = try await setup.daemon.terminate()
            let result = try await Sources.call(setup, "approve", Sources.approval(order: "ORD-DOWN"))
            #expect(result.status == 2, "\(result.stderr)")
            #expect(result.stderr.contains("not sent"))
        }
    }
}
