import Foundation
import Logging
import PGNotiCore
@_spi(Testing) import PGNotiStore
import Testing

@testable import PGNotiIntake

/// Reading cumulative Toss files: each row once, only new rows from a grown file, nothing from
/// a half-written line, bad rows reported by line while their neighbours are filed.
@Suite struct TossImporterTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/toss")

    func make() throws -> (TossImporter, Ledger) {
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        let intake = Intake(
            policy: IntakePolicy(providers: [TossPayments()]), store: ledger, logger: Logger(label: "t"))
        return (TossImporter(intake: intake, ledger: ledger, logger: Logger(label: "t")), ledger)
    }

    func fixture(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent(path)))
    }

    /// The file's lines, each with its newline.
    func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.split(separator: UInt8(ascii: "\n")).map { Array($0) + [UInt8(ascii: "\n")] }
    }

    @Test func theSameFileImportedTwiceFilesEachRowOnce() async throws {
        let (importer, ledger) = try make()
        let auth = try fixture("toss_AUTH_20070706.dat")
        let first = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: auth, complete: true)
        #expect(first.rows == 4 && first.new == 4 && first.isClean)
        let again = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: auth, complete: true)
        #expect(again.rows == 0 && again.new == 0, "nothing past what was read")
        #expect(try await ledger.pendingOutbox(limit: 100).count == 4)

        // Forgetting the progress (a new database file, say) still files nothing twice.
        try await ledger.executeOnWriter("DELETE FROM toss_files")
        let reread = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: auth, complete: true)
        #expect(reread.rows == 4 && reread.new == 0 && reread.duplicates == 4)
        #expect(try await ledger.pendingOutbox(limit: 100).count == 4)
    }

    @Test func aGrownFileFilesOnlyItsNewRows() async throws {
        let (importer, ledger) = try make()
        let rows = lines(try fixture("toss_AUTH_20070706.dat"))
        let firstPush = Array(rows[0..<2].joined())
        let secondPush = Array(rows.joined())
        let first = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: firstPush, complete: true)
        #expect(first.new == 2)
        let second = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: secondPush, complete: true)
        #expect(second.rows == 2 && second.new == 2 && second.duplicates == 0 && second.resumedAtLine == 3)
        #expect(!second.rewritten)
        #expect(try await ledger.pendingOutbox(limit: 100).count == 4)
    }

    @Test func aHalfWrittenLineIsNotTakenEarly() async throws {
        let (importer, ledger) = try make()
        let rows = lines(try fixture("toss_AUTH_20070706.dat"))
        // Two whole rows and half of the third, as an upload caught mid-way.
        let partial = Array(rows[0..<2].joined()) + Array(rows[2].prefix(30))
        let early = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: partial, complete: false)
        #expect(early.rows == 2 && early.new == 2 && early.bad.isEmpty, "the cut row is left for later")
        let whole = Array(rows.joined())
        let later = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: whole, complete: false)
        #expect(later.rows == 2 && later.new == 2 && later.isClean)
        #expect(try await ledger.quarantined(limit: 10).isEmpty, "no half row was refused")
    }

    @Test func aCorruptLineIsReportedByNumberAndItsNeighboursFiled() async throws {
        let (importer, ledger) = try make()
        let bytes = try fixture("corrupt-line/toss_AUTH_20070706.dat")
        let summary = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: bytes, complete: true)
        #expect(summary.bad.map(\.line) == [3])
        #expect(summary.bad.first?.reason == "invalid_field")
        #expect(summary.new == summary.rows - 1)
        let kept = try await ledger.quarantined(limit: 10)
        #expect(kept.count == 1 && kept.first?.provider == "toss")
    }

    /// The seed's REV file has a row without a Status. When a later push carries it, the bytes
    /// already read have changed: the file is read again and that row is filed.
    @Test func aRewrittenFileIsReadAgainAndTheCompletedRowFiled() async throws {
        let (importer, ledger) = try make()
        let rev = try fixture("toss_REV_20070706.dat")
        let first = try await importer.ingest(fileName: "toss_REV_20070706.dat", bytes: rev, complete: true)
        #expect(first.new == 3 && first.bad.map(\.line) == [3])
        var rows = lines(rev)
        #expect(rows[2].suffix(2) == [UInt8(ascii: ";"), UInt8(ascii: "\n")])
        rows[2].insert(contentsOf: Array("20".utf8), at: rows[2].count - 1)
        let corrected = Array(rows.joined())
        let second = try await importer.ingest(fileName: "toss_REV_20070706.dat", bytes: corrected, complete: true)
        #expect(second.rewritten && second.new == 1 && second.duplicates == 3 && second.isClean)
        #expect(try await ledger.pendingOutbox(limit: 100).count == 4)
    }

    @Test func aFileThatIsNotTossIsRefusedWhole() async throws {
        let (importer, _) = try make()
        await #expect(throws: TossImporter.Failure.self) {
            _ = try await importer.ingest(fileName: "notes.txt", bytes: Array("x".utf8), complete: true)
        }
        await #expect(throws: TossImporter.Failure.self) {
            _ = try await importer.ingest(
                fileName: "toss_AUTH_20070706.dat", bytes: Array("a;b\n".utf8), complete: true)
        }
    }
}
