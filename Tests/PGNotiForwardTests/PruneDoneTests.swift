import Foundation
import Logging
import Testing

@testable import PGNotiForward

#if canImport(Glibc)
    import Glibc
#endif

/// `keep_done_days`: delivered events older than that leave `forward/done/`; younger ones, and
/// anything in `failed/`, stay.
@Suite struct PruneDoneTests {
    /// Sets a file's modification time `age` in the past.
    static func backdate(_ path: String, by age: TimeInterval) throws {
        try FileManager.default.setAttributes(
            [.modificationDate: Date().addingTimeInterval(-age)], ofItemAtPath: path)
    }

    @Test func deliveredEventsPastKeepDoneDaysAreRemoved() async throws {
        let layout = try ForwarderTests.makeQueue()
        try layout.create()
        let day: TimeInterval = 86_400
        let old = try ForwarderTests.put(ForwarderTests.event("old", order: "O1"), 1, id: "old", in: layout.done)
        let recent = try ForwarderTests.put(
            ForwarderTests.event("recent", order: "O2"), 2, id: "recent", in: layout.done)
        let fresh = try ForwarderTests.put(ForwarderTests.event("fresh", order: "O3"), 3, id: "fresh", in: layout.done)
        let failed = try ForwarderTests.put(
            ForwarderTests.event("failed", order: "O4"), 4, id: "failed", in: layout.failed)
        try Self.backdate(layout.done + "/" + old, by: 8 * day)
        try Self.backdate(layout.done + "/" + recent, by: 6 * day)
        try Self.backdate(layout.failed + "/" + failed, by: 30 * day)

        var settings = ForwarderTests.settings()
        settings.keepDone = .seconds(7 * 86_400)
        let forwarder = Forwarder(
            layout: layout, delivery: ScriptedDelivery([:]), settings: settings, logger: Logger(label: "test"))
        // The first turn of the loop prunes; stop once the old file is gone (or after 10 s).
        try await ForwarderTests.run(forwarder) {
            !FileManager.default.fileExists(atPath: layout.done + "/" + old)
        }
        #expect(ForwardLayout.names(in: layout.done) == [recent, fresh], "only the one past 7 days removed")
        #expect(ForwardLayout.names(in: layout.failed) == [failed], "failed/ is never pruned")
    }

    /// keep_done_days = 0 keeps nothing delivered before now.
    @Test func keepDoneZeroRemovesEveryEarlierDelivery() async throws {
        let layout = try ForwarderTests.makeQueue()
        try layout.create()
        let name = try ForwarderTests.put(ForwarderTests.event("a", order: "O1"), 1, id: "a", in: layout.done)
        try Self.backdate(layout.done + "/" + name, by: 5)
        var settings = ForwarderTests.settings()
        settings.keepDone = .zero
        let forwarder = Forwarder(
            layout: layout, delivery: ScriptedDelivery([:]), settings: settings, logger: Logger(label: "test"))
        try await ForwarderTests.run(forwarder) { ForwardLayout.names(in: layout.done).isEmpty }
        #expect(ForwardLayout.names(in: layout.done).isEmpty)
    }
}
