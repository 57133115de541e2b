import Foundation
import GRDB
import PGNotiCore
import PGNotiStore
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// The commands that only look (`events list/show`, `quarantine list/show`, `stats`,
    /// `payup pending`) open the database read-only; `migrate` is the one that migrates.
    @Suite struct ReadOnlyCommandsEndToEndTests {
        static func pgnoti(_ arguments: [String], in dir: URL) async throws -> ProcessResult {
            try await runProcess(DaemonProcess.binary, arguments, in: dir)
        }

        static func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

        static let readOnlyCommands: [[String]] = [
            ["events", "list"], ["events", "list", "--json"], ["events", "show", "T1"], ["quarantine", "list"],
            ["quarantine", "show", "1"], ["stats"], ["payup", "pending"],
        ]

        @Test func readOnlyCommandsLeaveTheDatabaseByteForByte() async throws {
            let dir = try DaemonProcess.makeDirectory("readonly")
            let config = try DaemonProcess.writeConfig(in: dir).path
            let database = dir.appendingPathComponent("state/pgnoti.sqlite").path
            let ledger = try Ledger(path: database)
            let entry = LedgerEntry(
                key: NotificationKey(provider: .smartro, merchantID: "SMTPAY001m", tid: "T1", state: "0"),
                fingerprint: "amount=1000;result=3001", eventID: "E1", kind: "payment.approved", amount: 1000,
                resultCode: "3001", rawBody: Array("TID=T1".utf8), contentType: nil, peer: "127.0.0.1", client: nil,
                receivedAt: Date(), eventJSON: { Array(#"{"id":"E1"}"#.utf8) })
            _ = try await ledger.record(entry)
            _ = try await ledger.quarantine(
                QuarantineEntry(
                    provider: "smartro", reason: "signature_mismatch", detail: "test", rawBody: Array("x".utf8),
                    contentType: nil, forwardedFor: nil, peer: "127.0.0.1", client: nil, pathSecretSHA256: nil,
                    parsed: false, merchantID: nil, tid: nil, receivedAt: Date()))
            try await ledger.close()
            let before = try Self.bytes(database)

            for command in Self.readOnlyCommands {
                let run = try await Self.pgnoti(command + ["--config", config], in: dir)
                #expect(run.status == 0, "\(command): \(run.stderr)")
                #expect(try Self.bytes(database) == before, "\(command) changed the database")
            }
            let list = try await Self.pgnoti(["events", "list", "--config", config], in: dir)
            #expect(list.stdout.contains("T1"))
        }

        @Test func anOlderSchemaIsReadUnmigratedUntilMigrateRuns() async throws {
            let dir = try DaemonProcess.makeDirectory("migrate")
            let config = try DaemonProcess.writeConfig(in: dir).path
            let database = dir.appendingPathComponent("state/pgnoti.sqlite").path
            try FileManager.default.createDirectory(
                atPath: (database as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let fixture = DaemonProcess.fixtures.appendingPathComponent("ledger/v1.sql")
            let queue = try DatabaseQueue(path: database)
            try await queue.write { db in try db.execute(sql: try String(contentsOf: fixture, encoding: .utf8)) }
            try queue.close()
            let before = try Self.bytes(database)

            for command in Self.readOnlyCommands where command != ["quarantine", "show", "1"] {
                let run = try await Self.pgnoti(command + ["--config", config], in: dir)
                #expect(run.status == 0, "\(command): \(run.stderr)")
            }
            let list = try await Self.pgnoti(["events", "list", "--config", config], in: dir)
            #expect(list.stdout.contains("T1"), "the v1 notification is listed")
            #expect(try Self.bytes(database) == before, "a read-only command migrated or changed the v1 file")
            #expect(try Ledger.schemaVersion(path: database) == "v1")

            // While a daemon holds <database>.lock, migrate refuses.
            let lockFD = open(database + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            #expect(flock(lockFD, LOCK_EX | LOCK_NB) == 0)
            let refused = try await Self.pgnoti(["migrate", "--config", config], in: dir)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("stop it first"), "\(refused.stderr)")
            close(lockFD)
            #expect(try Ledger.schemaVersion(path: database) == "v1")

            let migrated = try await Self.pgnoti(["migrate", "--config", config], in: dir)
            #expect(migrated.status == 0, "\(migrated.stderr)")
            #expect(migrated.stdout.contains("migrated from schema v1 to \(Ledger.schemaVersion)"))
            #expect(try Ledger.schemaVersion(path: database) == Ledger.schemaVersion)
            let again = try await Self.pgnoti(["migrate", "--config", config], in: dir)
            #expect(again.stdout.contains("nothing to do"))
        }

        @Test func aNewerSchemaIsRefusedNamingBothVersions() async throws {
            let dir = try DaemonProcess.makeDirectory("newer")
            let config = try DaemonProcess.writeConfig(in: dir).path
            let database = dir.appendingPathComponent("state/pgnoti.sqlite").path
            let ledger = try Ledger(path: database)
            try await ledger.close()
            let queue = try DatabaseQueue(path: database)
            try await queue.write { db in
                try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('v99-from-the-future')")
            }
            try queue.close()
            let before = try Self.bytes(database)

            let run = try await Self.pgnoti(["events", "list", "--config", config], in: dir)
            #expect(run.status != 0)
            #expect(
                run.stderr.contains("v99-from-the-future") && run.stderr.contains(Ledger.schemaVersion), "\(run.stderr)"
            )
            #expect(try Self.bytes(database) == before)
        }
    }
}
